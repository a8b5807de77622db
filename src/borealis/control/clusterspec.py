"""The cluster spec: what ``borealis up`` builds, from a TOML file or the defaults.

    [cluster]
    master_user = "postgres"       # the PostgreSQL master user
    database = "postgres"
    host = "127.0.0.1"             # every process binds here (loopback by default)
    api_port = 5480                # the control plane's HTTP API (0: any free port)

    [storage]
    azs = ["az1", "az2", "az3"]
    nodes_per_az = 3               # each PG uses two nodes of every AZ; the third is a spare
    pg_mib = 16                    # protection group size (at most 48): the volume grows by PGs
    volume_gib_max = 64
    repair_after_s = 10.0          # a storage node down this long is rebuilt on a spare

    [[instances]]                  # the first one is the writer
    id = "i1"
    az = "az1"
    promotion_tier = 0             # 0-15: failover picks the lowest tier, then lowest lag

    [endpoints]
    writer_port = 5432             # 0: any free port, kept across down/up
    reader_port = 5433

    [failover]
    writer_dead_after_s = 0.5      # port refused this long: fail over
    writer_hung_after_s = 10.0     # port open but silent this long: fail over
    writer_stalled_after_s = 10.0  # commits waiting, VDL stuck, storage writable: fail over

    [network]
    mode = "loopback"              # or "netns": a network namespace per node and instance

Unknown keys are errors (a typo must not silently mean the default). The spec is read at
the first ``up`` of a data dir and kept in the coordination store; later changes go
through the CLI (``instance add``, ``endpoint create``...), not by editing the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from borealis.control.netns import CONTROL_PLANE, NETWORK_MODES
from borealis.errors import ConfigError
from borealis.transport.frames import FRAME_BYTES_MAX_DEFAULT
from borealis.types import AZ_COUNT

INSTANCES_MAX = 16
PG_MIB_MAX = 48
"""A full PG's snapshot (its pages, and up to 65,536 records above them) fits one frame."""
"""One writer and up to 15 readers (Aurora's limit)."""
PROMOTION_TIERS = range(16)


@dataclass
class InstanceSpec:
    id: str
    az: str
    promotion_tier: int = 1


@dataclass
class ClusterSpec:
    master_user: str = "postgres"
    database: str = "postgres"
    host: str = "127.0.0.1"
    api_port: int = 5480
    azs: list[str] = field(default_factory=lambda: ["az1", "az2", "az3"])
    nodes_per_az: int = 3
    pg_mib: int = 16
    volume_gib_max: int = 64
    repair_after_s: float = 10.0
    instances: list[InstanceSpec] = field(default_factory=lambda: [
        InstanceSpec("i1", "az1", 0), InstanceSpec("i2", "az2", 1),
        InstanceSpec("i3", "az3", 1)])
    writer_port: int = 5432
    reader_port: int = 5433
    writer_dead_after_s: float = 0.5
    writer_hung_after_s: float = 10.0
    writer_stalled_after_s: float = 10.0
    network_mode: str = "loopback"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if len(self.azs) != AZ_COUNT or len(set(self.azs)) != AZ_COUNT:
            raise ConfigError(f"storage.azs must name {AZ_COUNT} distinct AZs, got {self.azs}")
        if self.nodes_per_az < 2:
            raise ConfigError("storage.nodes_per_az must be at least 2 (two copies per AZ)")
        if self.pg_mib < 1 or self.volume_gib_max < 1:
            raise ConfigError("storage.pg_mib and storage.volume_gib_max must be positive")
        if self.pg_mib > PG_MIB_MAX:
            raise ConfigError(
                f"storage.pg_mib = {self.pg_mib}: at most {PG_MIB_MAX} for now. A segment "
                "is rebuilt from a peer's snapshot sent in one message, which a frame of "
                f"{FRAME_BYTES_MAX_DEFAULT // 2**20} MiB bounds (docs/architecture.md, "
                "Known limits); the volume still grows by adding PGs")
        if self.repair_after_s <= 0:
            raise ConfigError("storage.repair_after_s must be positive")
        if not 1 <= len(self.instances) <= INSTANCES_MAX:
            raise ConfigError(f"a cluster has 1 to {INSTANCES_MAX} instances")
        ids = [i.id for i in self.instances]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"instance ids must be unique: {ids}")
        for i in self.instances:
            check_instance(i, self.azs)
        for name in ("api_port", "writer_port", "reader_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name} must be a port number (0: any free one)")
        if self.writer_dead_after_s <= 0 or self.writer_hung_after_s <= 0 or \
                self.writer_stalled_after_s <= 0:
            raise ConfigError("the failover waits must be positive")
        if self.network_mode not in NETWORK_MODES:
            raise ConfigError(f"network.mode must be one of {list(NETWORK_MODES)}, "
                              f"not {self.network_mode!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterSpec:
        data = dict(data)
        data["instances"] = [InstanceSpec(**i) for i in data.get("instances", [])]
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> ClusterSpec:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read the cluster spec {path}: {exc}") from exc
        return cls.from_toml(doc)

    @classmethod
    def from_toml(cls, doc: dict[str, Any]) -> ClusterSpec:
        sections = {"cluster": ("master_user", "database", "host", "api_port"),
                    "storage": ("azs", "nodes_per_az", "pg_mib", "volume_gib_max",
                                "repair_after_s"),
                    "endpoints": ("writer_port", "reader_port"),
                    "failover": ("writer_dead_after_s", "writer_hung_after_s",
                                 "writer_stalled_after_s"),
                    "network": ("mode",)}
        renamed: dict[tuple[str, str], str] = {("network", "mode"): "network_mode"}
        values: dict[str, Any] = {}
        for section, table in doc.items():
            if section == "instances":
                continue
            if section not in sections:
                raise ConfigError(f"unknown section [{section}] in the cluster spec")
            if not isinstance(table, dict):
                raise ConfigError(f"[{section}] must be a table")
            for key, value in table.items():
                if key not in sections[section]:
                    raise ConfigError(f"unknown key {section}.{key} in the cluster spec")
                values[renamed.get((section, key), str(key))] = value
        if "instances" in doc:
            entries = doc["instances"]
            if not isinstance(entries, list):
                raise ConfigError("[[instances]] must be an array of tables")
            instances = []
            for entry in entries:
                unknown = set(entry) - {"id", "az", "promotion_tier"}
                if unknown:
                    raise ConfigError(f"unknown instance keys {sorted(unknown)}")
                if "id" not in entry or "az" not in entry:
                    raise ConfigError("every [[instances]] entry needs an id and an az")
                instances.append(InstanceSpec(str(entry["id"]), str(entry["az"]),
                                              int(entry.get("promotion_tier", 1))))
            values["instances"] = instances
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad value in the cluster spec: {exc}") from exc


def check_instance(instance: InstanceSpec, azs: list[str]) -> None:
    if not instance.id or not instance.id.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"instance id {instance.id!r}: letters, digits, - and _ only")
    if instance.az not in azs:
        raise ConfigError(f"instance {instance.id}: AZ {instance.az!r} is not one of {azs}")
    if instance.promotion_tier not in PROMOTION_TIERS:
        raise ConfigError(f"instance {instance.id}: promotion_tier must be 0-15")
    # Instances and storage nodes share one namespace of host names (netns mode).
    if instance.id == CONTROL_PLANE or any(
            instance.id.startswith(f"{az}-n") and instance.id[len(az) + 2:].isdigit()
            for az in azs):
        raise ConfigError(f"instance id {instance.id!r} is the name of another host "
                          "(a storage node or the control plane)")
