"""The storage transport: length-prefixed msgpack frames over TCP, pipelined RPC with typed errors.

DESIGN decision 4. Two layers, each in its own module:

- ``frames``: sans-I/O framing. A frame is a 4-byte big-endian length followed by one msgpack
  value. ``FrameDecoder`` turns a byte stream into values and refuses anything that breaks the
  protocol with ``ProtocolError``; it never touches a socket, so the simulator can use it too.
- ``rpc``: asyncio adapters (``RpcServer``, ``RpcClient``) that speak requests, responses and
  typed errors over frames. Many requests are in flight on one connection and are matched by
  request id; a ``BorealisError`` raised by a handler arrives at the caller as the same type.
- ``messages``: the request, response and error shapes inside frames, and how a typed error
  crosses the wire; pure, shared by ``rpc`` and the simulator.
- ``local``: ``LocalClient``, an in-process stand-in for ``RpcClient`` with the same contract
  (``RpcCaller``), for tests that do not need sockets.
- ``pool``: connections to peers by address, reopened on demand after a failure.

A peer that breaks the protocol is disconnected with a logged reason; it never crashes the node.
"""
