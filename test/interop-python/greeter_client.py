"""The gRPC asyncio tutorial's Greeter client (sections 4.4 and 5.1-5.3), all four RPCs in one run.

Usage: greeter_client.py TARGET STUBS_DIR
  TARGET     host:port of the server
  STUBS_DIR  where grpc_tools.protoc wrote helloworld_pb2.py and helloworld_pb2_grpc.py

Differences from the tutorial, for a test: no asyncio.sleep between requests,
Chat sends each name only after the previous reply came back (write/read on the
call, which proves the call is full duplex), and one call with an empty name
prints the error the server returns.
"""

import asyncio
import sys

import grpc

sys.path.insert(0, sys.argv[2])
import helloworld_pb2  # noqa: E402
import helloworld_pb2_grpc  # noqa: E402

NAMES = ["Alice", "Bob", "Charlie"]


async def run(target):
    # No proxy: the test server is on loopback, whatever the environment says.
    options = [("grpc.enable_http_proxy", 0)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)

        # 4.4 unary
        response = await stub.SayHello(helloworld_pb2.HelloRequest(name="Alice"))
        print(f"Greeter client received: {response.message}")

        # 5.1 server streaming
        async for response in stub.StreamHello(helloworld_pb2.HelloRequest(name="Alice")):
            print(f"Received: {response.message}")

        # 5.2 client streaming
        async def request_generator():
            for name in NAMES:
                yield helloworld_pb2.HelloRequest(name=name)

        response = await stub.CollectGreetings(request_generator())
        print(f"Received: {response.message}")

        # 5.3 bidirectional streaming, in lockstep
        call = stub.Chat()
        for name in NAMES:
            await call.write(helloworld_pb2.HelloRequest(name=name))
            response = await call.read()
            print(f"Received: {response.message}")
        await call.done_writing()
        if await call.read() is not grpc.aio.EOF:
            print("Chat: unexpected extra reply")
        print(f"Chat status: {(await call.code()).name}")

        # the contract's edge case
        try:
            await stub.SayHello(helloworld_pb2.HelloRequest(name=""))
        except grpc.aio.AioRpcError as e:
            print(f"SayHello error: {e.code().name} {e.details()}")


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
