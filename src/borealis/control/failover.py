"""Failover decisions: pure functions of what the control plane observed (STYLE: observe,
decide, act apart), so that every rule here is tested without a process.

The observation is a ``ClusterView``: each instance's role as recorded in the coordination
store, whether its health checks pass, when it last answered, its replica lag and its
promotion tier. ``plan`` turns it into the ``Action``s that bring the cluster back to one
healthy writer:

- the writer is **failed** when its port refuses connections (the process is gone) for
  ``writer_dead_after_s``, or when it has not answered a health check for
  ``writer_hung_after_s`` while its port is open (hung, or only slow: a writer committing
  a large transaction can be slow to answer, so this wait is longer); a hung writer that
  wakes up later is fenced by the volume epoch the new writer raises; or when it answers
  but is **stalled**: its commits have waited ``writer_stalled_after_s`` with its VDL not
  advancing while a write quorum of every PG answers the control plane (a writer cut off
  from storage, or deaf to its replies; when storage itself is down a new writer could do
  no better, so it is not failed over then);
- the **new writer** is the healthy reader with the lowest promotion tier (0-15), then the
  lowest replica lag, then the lowest id (a stable tie-break), as Aurora chooses; a manual
  failover names its target, which must be a healthy reader;
- every other reader is re-pointed at the new writer, and the old writer, once it answers
  again, is brought back as a reader of the new one (never as a second writer).

Invariant (checked by ``check_plan``): a plan promotes at most one instance, promotes only
a reader that is healthy, and never leaves two instances recorded as writer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

PROMOTION_TIER_MAX = 15


class Role(enum.Enum):
    WRITER = "writer"
    READER = "reader"


@dataclass(frozen=True, slots=True)
class InstanceView:
    instance_id: str
    role: Role
    az: str
    healthy: bool
    last_seen_s: float          # when it last answered a health check (control-plane clock)
    lag_ms: float | None = None  # a reader's replica lag; None when unknown
    promotion_tier: int = 1
    following: str | None = None  # the writer a reader follows
    refused: bool = False   # its port refuses connections: the process is gone
    stalled_s: float = 0.0  # a writer's commits have waited this long, its VDL stuck

    def __post_init__(self) -> None:
        if not 0 <= self.promotion_tier <= PROMOTION_TIER_MAX:
            raise ValueError(f"promotion tier {self.promotion_tier} is outside 0..15")
        if self.lag_ms is not None and self.lag_ms < 0:
            raise ValueError("replica lag cannot be negative")


@dataclass(frozen=True, slots=True)
class ClusterView:
    instances: tuple[InstanceView, ...]
    now_s: float
    storage_writable: bool = True
    """A write quorum of every PG answers the control plane's storage checks."""

    def __post_init__(self) -> None:
        ids = [i.instance_id for i in self.instances]
        if len(ids) != len(set(ids)):
            raise ValueError("an instance appears twice in the view")

    @property
    def writers(self) -> list[InstanceView]:
        return [i for i in self.instances if i.role is Role.WRITER]

    def get(self, instance_id: str) -> InstanceView | None:
        return next((i for i in self.instances if i.instance_id == instance_id), None)


@dataclass(frozen=True, slots=True)
class Policy:
    writer_dead_after_s: float = 0.5
    """A writer whose port has refused connections for this long is failed over (the bar
    is a failover within 5 s of a kill, detection and promotion included)."""
    writer_hung_after_s: float = 10.0
    """A writer that has not answered for this long, its port open, is failed over."""
    writer_stalled_after_s: float = 10.0
    """A writer whose commits have waited this long, its VDL stuck while storage is
    writable, is failed over."""

    def __post_init__(self) -> None:
        if self.writer_dead_after_s <= 0 or self.writer_hung_after_s <= 0 or \
                self.writer_stalled_after_s <= 0:
            raise ValueError("the failover waits must be positive")


@dataclass(frozen=True, slots=True)
class Promote:
    """Make this reader the writer (it raises the volume epoch: the old writer is fenced)."""

    instance_id: str


@dataclass(frozen=True, slots=True)
class Follow:
    """Point this reader (or a returning old writer, as a reader) at ``writer``."""

    instance_id: str
    writer: str


@dataclass(frozen=True, slots=True)
class NoCandidate:
    """The writer failed and no reader can take over: the cluster waits (and says so)."""

    reason: str


Action = Promote | Follow | NoCandidate


def writer_failed(view: ClusterView, policy: Policy) -> bool:
    """Whether the recorded writer must be replaced (missing, or silent too long)."""
    writers = view.writers
    if not writers:
        return True
    writer = writers[0]
    if writer.healthy:
        return view.storage_writable and writer.stalled_s >= policy.writer_stalled_after_s
    silent_s = view.now_s - writer.last_seen_s
    wait_s = policy.writer_dead_after_s if writer.refused else policy.writer_hung_after_s
    return silent_s >= wait_s


def candidates(view: ClusterView) -> list[InstanceView]:
    """Readers that may become the writer, best first."""
    ready = [i for i in view.instances if i.role is Role.READER and i.healthy]
    return sorted(ready, key=lambda i: (i.promotion_tier,
                                        i.lag_ms if i.lag_ms is not None else float("inf"),
                                        i.instance_id))


def plan(view: ClusterView, policy: Policy, *, target: str | None = None) -> list[Action]:
    """What to do now. ``target``: a manual failover (or switchover) to this reader, which
    happens even if the writer is healthy."""
    if len(view.writers) > 1:
        raise ValueError("the view records more than one writer: the store was written "
                         "without compare-and-set")
    writer = view.writers[0] if view.writers else None
    if target is not None:
        chosen = view.get(target)
        if chosen is None or chosen.role is not Role.READER or not chosen.healthy:
            return [NoCandidate(f"{target} is not a healthy reader")]
        new_writer = chosen
    elif writer is not None and not writer_failed(view, policy):
        return _repair_followers(view, writer.instance_id)
    else:
        ranked = candidates(view)
        if not ranked:
            return [NoCandidate("no healthy reader to promote")]
        new_writer = ranked[0]
    actions: list[Action] = [Promote(new_writer.instance_id)]
    for instance in view.instances:
        if instance.instance_id == new_writer.instance_id:
            continue
        actions.append(Follow(instance.instance_id, new_writer.instance_id))
    check_plan(view, actions)
    return actions


def _repair_followers(view: ClusterView, writer: str) -> list[Action]:
    """The writer is fine: readers following anything else are re-pointed at it."""
    return [Follow(i.instance_id, writer) for i in view.instances
            if i.role is Role.READER and i.healthy and i.following != writer]


def check_plan(view: ClusterView, actions: list[Action]) -> None:
    """The plan's invariant (module docstring); AssertionError on a broken one."""
    promoted = [a.instance_id for a in actions if isinstance(a, Promote)]
    assert len(promoted) <= 1, f"a plan promotes {promoted}"
    for instance_id in promoted:
        chosen = view.get(instance_id)
        assert chosen is not None, f"promotes an unknown instance {instance_id}"
        assert chosen.role is Role.READER, f"promotes {instance_id}, which is not a reader"
        assert chosen.healthy, f"promotes {instance_id}, which is not healthy"
        for action in actions:
            if isinstance(action, Follow):
                assert action.writer == instance_id, "a follower points at the old writer"
                assert action.instance_id != instance_id, "the new writer follows itself"
