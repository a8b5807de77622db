"""The control plane's pure parts: the cluster spec and the choice of a spare."""

from __future__ import annotations

import pytest

from borealis.control.clusterspec import ClusterSpec
from borealis.control.healing import choose_spare, segments_on, writable
from borealis.errors import ConfigError
from borealis.types import NodeId, VolumeId
from borealis.volume.geometry import Geometry, place_pg
from borealis.volume.spec import NodeInfo, VolumeSpec


def test_the_default_spec_is_the_issue_s_cluster() -> None:
    spec = ClusterSpec()
    assert spec.nodes_per_az == 3 and len(spec.azs) == 3
    assert [i.id for i in spec.instances] == ["i1", "i2", "i3"]
    assert (spec.writer_port, spec.reader_port) == (5432, 5433)


def test_a_toml_spec_is_read_and_checked() -> None:
    spec = ClusterSpec.from_toml({
        "cluster": {"api_port": 0, "master_user": "admin"},
        "storage": {"nodes_per_az": 4, "repair_after_s": 2.5},
        "instances": [{"id": "w", "az": "az2", "promotion_tier": 0},
                      {"id": "r", "az": "az3"}],
    })
    assert spec.master_user == "admin" and spec.nodes_per_az == 4
    assert [(i.id, i.az, i.promotion_tier) for i in spec.instances] == [
        ("w", "az2", 0), ("r", "az3", 1)]


@pytest.mark.parametrize("doc, message", [
    ({"storage": {"nodes_per_ax": 3}}, "unknown key storage.nodes_per_ax"),
    ({"clusters": {}}, "unknown section"),
    ({"storage": {"azs": ["a", "b"]}}, "3 distinct AZs"),
    ({"storage": {"nodes_per_az": 1}}, "at least 2"),
    ({"storage": {"pg_mib": 10240}}, "at most 48 for now"),
    ({"instances": [{"id": "x", "az": "az9"}]}, "is not one of"),
    ({"instances": [{"id": "x", "az": "az1", "promotion_tier": 16}]}, "0-15"),
    ({"instances": [{"id": "x", "az": "az1"}, {"id": "x", "az": "az2"}]}, "unique"),
    ({"instances": [{"id": "bad id!", "az": "az1"}]}, "letters, digits"),
    ({"instances": [{"az": "az1"}]}, "needs an id"),
    ({"endpoints": {"writer_port": 70000}}, "port number"),
    ({"failover": {"writer_dead_after_s": 0}}, "positive"),
])
def test_a_bad_spec_is_refused_with_a_clear_error(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClusterSpec.from_toml(doc)


def _volume(nodes_per_az: int) -> VolumeSpec:
    nodes = {NodeId(f"az{a}-n{k}"): NodeInfo(NodeId(f"az{a}-n{k}"), f"az{a}", f"h:{a}{k}")
             for a in (1, 2, 3) for k in range(1, nodes_per_az + 1)}
    spec = VolumeSpec(Geometry(VolumeId("v")), nodes)
    for pg in range(3):
        layout = place_pg(VolumeId("v"), pg, spec.nodes_by_az())
        spec.layouts[layout.pg] = layout
    return spec


def test_the_spare_is_a_node_of_the_az_holding_nothing_of_that_pg() -> None:
    spec = _volume(3)
    for pg in range(3):
        holding = {p.node for p in spec.layouts[pg].segments}  # type: ignore[index]
        spare = choose_spare(spec, pg, "az1", down=set())
        assert spare is not None and spare.startswith("az1-") and spare not in holding
        # A spare that is itself down is no spare.
        assert choose_spare(spec, pg, "az1", down={spare}) is None


def test_no_spare_with_two_nodes_per_az() -> None:
    spec = _volume(2)
    assert choose_spare(spec, 0, "az2", down=set()) is None


def test_segments_on_a_node() -> None:
    spec = _volume(3)
    on = segments_on(spec, "az1-n1")
    assert on and all(spec.layouts[pg].segments  # type: ignore[index]
                      for pg, _ in on)
    for pg, segment in on:
        placement = next(p for p in spec.layouts[pg].segments  # type: ignore[index]
                         if p.segment == segment)
        assert placement.node == "az1-n1"


def test_storage_is_writable_while_every_pg_has_four_segments_up() -> None:
    spec = _volume(3)
    every = set(spec.nodes)
    assert writable(spec, every)
    az1 = {n for n in every if n.startswith("az1-")}
    assert writable(spec, every - az1)  # an AZ down: 4 of 6 left
    holding = {p.node for p in spec.layouts[0].segments}  # type: ignore[index]
    one_more = next(n for n in sorted(holding) if not n.startswith("az1-"))
    assert not writable(spec, every - az1 - {one_more})  # AZ + 1 of PG 0
    assert not writable(spec, set())
