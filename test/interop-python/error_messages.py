"""Prints, as one JSON array a line, the status code and message grpcio reads
from a failing SayHello and from a method the server does not have.

Usage: error_messages.py TARGET STUBS_DIR
  TARGET     host:port of the server
  STUBS_DIR  where grpc_tools.protoc wrote helloworld_pb2.py and helloworld_pb2_grpc.py
"""

import asyncio
import json
import sys

import grpc

sys.path.insert(0, sys.argv[2])
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402


def show(e):
    # JSON, so a line break or text beyond ASCII in the message shows as it is.
    print(json.dumps([e.code().name, e.details()], ensure_ascii=True))


async def run(target):
    # No proxy: the test server is on loopback, whatever the environment says.
    options = [("grpc.enable_http_proxy", 0)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        try:
            await stub.SayHello(helloworld_pb2.HelloRequest(name="Alice"))
        except grpc.aio.AioRpcError as e:
            show(e)
        try:
            await channel.unary_unary("/Greeter/Nope")(b"")
        except grpc.aio.AioRpcError as e:
            show(e)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
