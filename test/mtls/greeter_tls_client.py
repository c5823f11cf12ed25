"""SayHello over TLS with a client certificate, with Python's grpcio (Debian's).

Usage: greeter_tls_client.py TARGET STUBS_DIR CA CERT KEY [TOKEN]
  TARGET     host:port of the server (its certificate names localhost)
  STUBS_DIR  where grpc_tools.protoc wrote helloworld_pb2.py and helloworld_pb2_grpc.py
  CA         PEM file of the CA the server's certificate chains to
  CERT, KEY  PEM files of the client's certificate and key ("-" for none)
  TOKEN      a bearer token sent as call credentials (optional)

Prints the reply's message, or "error: CODE: details" and exits 1.
"""

import sys

import grpc

sys.path.insert(0, sys.argv[2])
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402


def read(path):
    if path == "-":
        return None
    with open(path, "rb") as f:
        return f.read()


def main():
    target, _, ca, cert, key = sys.argv[1:6]
    token = sys.argv[6] if len(sys.argv) > 6 else None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key),
        certificate_chain=read(cert),
    )
    if token is not None:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token)
        )
    options = [
        ("grpc.enable_http_proxy", 0),
        ("grpc.ssl_target_name_override", "localhost"),
    ]
    with grpc.secure_channel(target, credentials, options=options) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        try:
            reply = stub.SayHello(helloworld_pb2.HelloRequest(name="Python"), timeout=20)
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}")
            return 1
        print(reply.message)
        return 0


sys.exit(main())
