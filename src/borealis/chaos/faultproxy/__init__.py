"""The fault proxy: latency, loss, partitions and duplication between processes, in user space.

``tc netem`` is not available here (and network namespaces not everywhere), so the chaos suite puts this
proxy on the links it wants to break: one asyncio process hosts many named *links*, each
listening on 127.0.0.1 and forwarding to one target ``host:port``. Faults are set per link
and per direction (``to_target``, ``from_target``) at run time, in process (``FaultProxy``)
or from another process over a small HTTP/JSON control server (``ControlServer``).

The faults are what TCP makes of a bad network, not what IP does, because the endpoints only
ever see TCP:

- *latency* with *jitter*: each chunk is delayed, but never overtakes the bytes before it
  (release times are non-decreasing per direction), so jitter bunches bytes up rather than
  reordering them.
- *loss* becomes *stalls*: with ``stall_probability`` per chunk the direction holds for a
  retransmission timeout (``stall_ms``), lost again with the same probability, doubling up
  to ``stall_ms_max``; after ``STALL_RETRIES_MAX`` retransmissions TCP gives up, and so does
  the proxy (a reset). Chunks arriving during a stall queue behind it.
- *resets*: with ``reset_probability_per_s`` per connection per second (either direction's
  value counts) both sides are aborted with an RST.
- *blocked*: the direction holds its bytes, the connection stays open and silent, as in a
  partition. A connection accepted while ``to_target`` is blocked is accepted and held: the
  target sees no connection until the block is lifted (the SYN was dropped). On unblock the
  held bytes are delivered (``on_heal="deliver"``, what TCP does after retransmission),
  dropped (``"drop"``: lost messages, not TCP; on a byte link it tears the stream) or the
  connections are reset (``"reset"``: the retransmissions timed out).
- on *frame links*, which carry our RPC frames only (a 4-byte big-endian length and a msgpack
  body, ``borealis.transport.frames``), whole frames are the unit: ``duplicate_probability``
  sends a frame twice (a resent request), and ``frame_delay_ms_max`` delays each frame
  independently, so whole frames may overtake each other (replies out of order). A frame is
  never split or interleaved with another.

Memory: each connection direction holds at most ``held_bytes_max`` bytes of delayed or blocked
data; beyond that the proxy stops reading from the source, so TCP pushes back on the sender
instead of the proxy growing. A frame link also keeps one incomplete frame (at most
``FRAME_BYTES_MAX_DEFAULT``, the bound every RPC endpoint already accepts).

Healing always works and is idempotent: ``heal_all`` clears every fault and releases every
held byte at once. Randomness comes from one ``random.Random`` seeded by the caller.
"""

from borealis.chaos.faultproxy.cli import LinkSpec, main, parser, serve
from borealis.chaos.faultproxy.connections import (
    CONNECT_TIMEOUT_S,
    FLUSH_BYTES_MAX,
    STALL_RETRIES_MAX,
    TIMER_SLACK_S,
)
from borealis.chaos.faultproxy.control import ControlServer
from borealis.chaos.faultproxy.faults import (
    BOTH,
    NO_FAULTS,
    BadFaultsError,
    Direction,
    DirectionStats,
    FaultProxyError,
    Faults,
    FrameSplitter,
    HealAction,
    LinkExistsError,
    ListenError,
    MethodNotAllowedError,
    NotFoundError,
    UnknownLinkError,
    directions,
)
from borealis.chaos.faultproxy.proxy import (
    HELD_BYTES_MAX_DEFAULT,
    HOST,
    FaultProxy,
    Link,
    parse_address,
)

__all__ = [
    "BOTH",
    "CONNECT_TIMEOUT_S",
    "FLUSH_BYTES_MAX",
    "HELD_BYTES_MAX_DEFAULT",
    "HOST",
    "NO_FAULTS",
    "STALL_RETRIES_MAX",
    "TIMER_SLACK_S",
    "BadFaultsError",
    "ControlServer",
    "Direction",
    "DirectionStats",
    "FaultProxy",
    "FaultProxyError",
    "Faults",
    "FrameSplitter",
    "HealAction",
    "Link",
    "LinkExistsError",
    "LinkSpec",
    "ListenError",
    "MethodNotAllowedError",
    "NotFoundError",
    "UnknownLinkError",
    "directions",
    "main",
    "parse_address",
    "parser",
    "serve",
]
