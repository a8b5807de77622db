"""Failover decisions as pure functions of an observed cluster: when the writer counts as
failed, which reader is promoted (tier, then lag, then id), manual failover targets, and
the plan invariant, including a property test over random clusters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from borealis.control.failover import (
    ClusterView,
    Follow,
    InstanceView,
    NoCandidate,
    Policy,
    Promote,
    Role,
    candidates,
    check_plan,
    plan,
    writer_failed,
)

POLICY = Policy(writer_dead_after_s=2.0, writer_hung_after_s=8.0)


def reader(name: str, *, tier: int = 1, lag: float | None = 1.0, healthy: bool = True,
           following: str | None = "w") -> InstanceView:
    return InstanceView(name, Role.READER, "az1", healthy, 100.0, lag, tier, following)


def writer(*, healthy: bool = True, last_seen: float = 100.0,
           refused: bool = True) -> InstanceView:
    return InstanceView("w", Role.WRITER, "az1", healthy, last_seen, refused=refused)


def test_a_healthy_writer_is_left_alone() -> None:
    view = ClusterView((writer(), reader("r1"), reader("r2")), now_s=100.5)
    assert not writer_failed(view, POLICY)
    assert plan(view, POLICY) == []


def test_a_silent_writer_fails_over_only_after_the_grace_period() -> None:
    silent = writer(healthy=False, last_seen=100.0)
    early = ClusterView((silent, reader("r1")), now_s=101.0)
    assert not writer_failed(early, POLICY)
    assert plan(early, POLICY) == []
    late = ClusterView((silent, reader("r1")), now_s=102.0)
    assert writer_failed(late, POLICY)
    assert plan(late, POLICY) == [Promote("r1"), Follow("w", "r1")]


def test_a_writer_that_only_stops_answering_gets_a_longer_grace() -> None:
    slow = writer(healthy=False, last_seen=100.0, refused=False)  # port open, no answer
    assert not writer_failed(ClusterView((slow, reader("r1")), now_s=105.0), POLICY)
    assert writer_failed(ClusterView((slow, reader("r1")), now_s=108.0), POLICY)


def test_a_stalled_writer_fails_over_only_while_storage_is_writable() -> None:
    """A writer that answers health checks but whose commits wait with VDL stuck (cut off
    from storage, or deaf to its replies) is replaced, but only when storage answers the
    control plane: with storage down a new writer could do no better."""
    policy = Policy(2.0, 8.0, writer_stalled_after_s=10.0)

    def stalled(seconds: float) -> InstanceView:
        return InstanceView("w", Role.WRITER, "az1", True, 100.0, stalled_s=seconds)

    assert not writer_failed(ClusterView((stalled(9.9), reader("r1")), 100.0), policy)
    assert writer_failed(ClusterView((stalled(10.0), reader("r1")), 100.0), policy)
    assert plan(ClusterView((stalled(12.0), reader("r1")), 100.0), policy) == \
        [Promote("r1"), Follow("w", "r1")]
    down = ClusterView((stalled(60.0), reader("r1")), 100.0, storage_writable=False)
    assert not writer_failed(down, policy)
    assert plan(down, policy) == []


def test_the_new_writer_is_chosen_by_tier_then_lag_then_id() -> None:
    dead = writer(healthy=False, last_seen=0.0)
    view = ClusterView((dead, reader("r3", tier=1, lag=0.1), reader("r2", tier=0, lag=9.0),
                        reader("r1", tier=0, lag=9.0), reader("r4", tier=0, lag=None),
                        reader("r5", tier=0, lag=0.0, healthy=False)), now_s=100.0)
    assert [c.instance_id for c in candidates(view)] == ["r1", "r2", "r4", "r3"]
    actions = plan(view, POLICY)
    assert actions[0] == Promote("r1")
    assert set(actions[1:]) == {Follow(i, "r1") for i in ("w", "r2", "r3", "r4", "r5")}


def test_no_healthy_reader_means_no_promotion() -> None:
    view = ClusterView((writer(healthy=False, last_seen=0.0), reader("r1", healthy=False)),
                       now_s=100.0)
    assert plan(view, POLICY) == [NoCandidate("no healthy reader to promote")]


def test_a_manual_failover_goes_to_its_target_even_from_a_healthy_writer() -> None:
    view = ClusterView((writer(), reader("r1", tier=0), reader("r2", tier=5)), now_s=100.0)
    assert plan(view, POLICY, target="r2") == [Promote("r2"), Follow("w", "r2"),
                                               Follow("r1", "r2")]
    assert isinstance(plan(view, POLICY, target="w")[0], NoCandidate)
    assert isinstance(plan(view, POLICY, target="nobody")[0], NoCandidate)


def test_readers_following_something_else_are_repointed() -> None:
    view = ClusterView((writer(), reader("r1", following="old"), reader("r2")), now_s=100.0)
    assert plan(view, POLICY) == [Follow("r1", "w")]


def test_bad_views_are_refused() -> None:
    with pytest.raises(ValueError):
        InstanceView("x", Role.READER, "az1", True, 0.0, promotion_tier=16)
    with pytest.raises(ValueError):
        ClusterView((reader("r1"), reader("r1")), now_s=0.0)
    with pytest.raises(ValueError):
        plan(ClusterView((writer(), InstanceView("w2", Role.WRITER, "az2", True, 0.0)),
                         now_s=0.0), POLICY)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 15),
                          st.one_of(st.none(), st.floats(0, 1e4))), min_size=0, max_size=8),
       st.booleans(), st.floats(0, 10), st.booleans())
def test_every_plan_keeps_the_invariant(readers: list[tuple[bool, int, float | None]],
                                        writer_healthy: bool, silent_s: float,
                                        refused: bool) -> None:
    instances = [writer(healthy=writer_healthy, last_seen=100.0 - silent_s, refused=refused)]
    instances += [reader(f"r{i}", healthy=h, tier=t, lag=lag)
                  for i, (h, t, lag) in enumerate(readers)]
    view = ClusterView(tuple(instances), now_s=100.0)
    actions = plan(view, POLICY)
    check_plan(view, actions)
    promotions = [a for a in actions if isinstance(a, Promote)]
    if writer_failed(view, POLICY) and candidates(view):
        assert promotions == [Promote(candidates(view)[0].instance_id)]
    else:
        assert promotions == []
