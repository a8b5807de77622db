"""Network modes: where a cluster's processes live on the network, and the faults between them.

``[network] mode = "loopback"`` (the default) runs every process on 127.0.0.1.
``mode = "netns"`` gives every storage node and every database instance a host of its own:
a Linux network namespace, joined to the root namespace (where the control plane, the
router and the clients are) by a veth pair on one bridge, so that an AZ is a set of real
hosts and a partition is a firewall rule, not a mocked socket. The shape:

    root namespace                    bridge bNNNNNNbr   10.A.B.1/24   "control-plane"
      bNNNNNNh2  <-- veth -->  namespace borealis-NNNNNN-az1-n1   eth0 10.A.B.2/24
      bNNNNNNh3  <-- veth -->  namespace borealis-NNNNNN-az1-n2   eth0 10.A.B.3/24
      ...

``NNNNNN`` is a tag hashed from the data dir, so that two clusters never share a name; the
subnet comes from the same hash (the next free one when a route overlaps). A host's index,
hence its address, is kept in ``DATA_DIR/network.json``, so addresses stay the same across
``down``/``up`` (records and the volume spec name them). Everything is created idempotently
when a process starts (``attach``), the namespaces of processes that are not running are
made afresh at the control plane's boot (``prepare``: what a crashed run left behind), and
``remove`` (``borealis down``) deletes the namespaces and the bridge.

The faults (``Faults``, for the chaos nemeses, run as root in the root namespace) are
nftables rules in one table of our own per namespace (``table inet borealis_chaos``), so
healing is deleting that table. Every rule is written in a namespace host's own table —
never in the root namespace, which other clusters and the machine share: a rule between
the control plane and a host goes into the host's table. ``ruleset`` renders the faults
to nft scripts and is pure, tested without root.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from borealis.errors import BorealisError, ConfigError

log = logging.getLogger(__name__)

NETWORK_MODES = ("loopback", "netns")
LOOPBACK_ADDRESS = "127.0.0.1"
CONTROL_PLANE = "control-plane"
"""The root namespace's host: the control plane, the router and the clients."""
STATE_FILE = "network.json"
NAMESPACE_PREFIX = "borealis-"
INTERFACE = "eth0"
"""A namespace's end of its veth pair."""
IFNAME_MAX = 15
"""Linux's limit on an interface name (IFNAMSIZ - 1)."""
TAG_HEX = 6
PREFIX_LENGTH = 24
HOSTS_MAX = 250
"""Addresses .2 to .251 of the /24 (.1 is the control plane's)."""
SUBNET_TRIES_MAX = 256
COMMAND_TIMEOUT_S = 15.0
CHAOS_TABLE = "borealis_chaos"
CHAOS_PRIORITY = -10
"""Before any filter the machine has at priority 0."""
LOSS_PERCENT_MAX = 100


class NetnsError(BorealisError):
    """An ``ip`` or ``nft`` command failed: the namespaces are not what they should be."""

    code = "netns"


def unavailable() -> str | None:
    """Why netns mode cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run borealis up as root)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return (f"network namespaces need {' and '.join(missing)} on PATH "
                "(Debian packages iproute2 and nftables)")
    return None


def require() -> None:
    reason = unavailable()
    if reason is not None:
        raise ConfigError(f'[network] mode = "netns": {reason}')


def in_namespace(namespace: str, argv: list[str]) -> list[str]:
    """``ip netns exec`` execs the program: the PID started is the program's."""
    assert namespace.startswith(NAMESPACE_PREFIX), namespace
    return ["ip", "netns", "exec", namespace, *argv]


def cluster_tag(data_dir: Path) -> str:
    return hashlib.sha256(os.fsencode(str(data_dir.resolve()))).hexdigest()[:TAG_HEX]


def _run(argv: list[str], *, stdin: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({done.returncode}): "
                         f"{done.stderr.strip()[-500:]}")
    return done


# --- the network a control plane starts processes on ------------------------------------


class Network(Protocol):
    """Where a cluster's hosts are: an address per host, and the namespace to run it in."""

    mode: str

    def address(self, host: str) -> str:
        """The host's IP address (allocated at the first ask, then kept)."""
        ...

    def attach(self, host: str) -> str:
        """Make the host ready to run a process; the namespace to run it in ("" for none)."""
        ...

    def prepare(self, running: set[str]) -> None:
        """At boot: clear what a crashed run left, keeping the hosts whose processes run."""
        ...

    def remove(self) -> None:
        """At ``down``: remove every namespace and link of this cluster."""
        ...


class LoopbackNetwork:
    """Every process on 127.0.0.1, as before netns mode existed."""

    mode = "loopback"

    def address(self, host: str) -> str:
        return LOOPBACK_ADDRESS

    def attach(self, host: str) -> str:
        return ""

    def prepare(self, running: set[str]) -> None:
        pass

    def remove(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Names:
    """The names of one cluster's namespaces and links, all derived from its tag."""

    tag: str

    def __post_init__(self) -> None:
        assert len(self.tag) == TAG_HEX and all(c in "0123456789abcdef" for c in self.tag)
        assert len(self.veth(HOSTS_MAX + 1)) <= IFNAME_MAX
        assert len(self.peer(HOSTS_MAX + 1)) <= IFNAME_MAX
        assert len(self.bridge) <= IFNAME_MAX

    @property
    def bridge(self) -> str:
        return f"b{self.tag}br"

    @property
    def namespace_prefix(self) -> str:
        return f"{NAMESPACE_PREFIX}{self.tag}-"

    def namespace(self, host: str) -> str:
        assert host != CONTROL_PLANE, "the control plane runs in the root namespace"
        return f"{self.namespace_prefix}{host}"

    def veth(self, index: int) -> str:
        """The root namespace's end of a host's veth pair."""
        return f"b{self.tag}h{index}"

    def peer(self, index: int) -> str:
        """The namespace's end, before it is moved in and renamed ``INTERFACE``."""
        return f"b{self.tag}p{index}"


class NamespaceNetwork:
    """A network namespace per host on one bridge (see the module docstring).

    ``address`` is bookkeeping only (the state file); ``attach`` creates. Thread-safe: the
    control plane starts processes from several threads at once."""

    mode = "netns"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.names = Names(cluster_tag(self.data_dir))
        self.state_path = self.data_dir / STATE_FILE
        self._lock = threading.Lock()
        self.subnet: ipaddress.IPv4Network | None = None
        self.hosts: dict[str, int] = {}
        self._load()

    # -- the state file ------------------------------------------------------------------
    def _load(self) -> None:
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.state_path}: {exc}") from exc
        if state.get("tag") != self.names.tag:
            # The data dir moved: its hosts keep their indexes, on a subnet of the new tag.
            log.warning("network state of another path; a new subnet is chosen")
        else:
            self.subnet = ipaddress.IPv4Network(state["subnet"])
        self.hosts = {str(k): int(v) for k, v in state.get("hosts", {}).items()}
        assert self.hosts.get(CONTROL_PLANE, 1) == 1

    def _save(self) -> None:
        assert self.subnet is not None
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mode": self.mode, "tag": self.names.tag,
                                   "subnet": str(self.subnet), "hosts": self.hosts},
                                  indent=1))
        tmp.replace(self.state_path)

    def _subnet(self) -> ipaddress.IPv4Network:
        if self.subnet is None:
            self.subnet = choose_subnet(self.names.tag, _routes_in_use())
            self.hosts.setdefault(CONTROL_PLANE, 1)
            self._save()
        return self.subnet

    # -- addresses -----------------------------------------------------------------------
    def address(self, host: str) -> str:
        with self._lock:
            return self._address(host)

    def _address(self, host: str) -> str:
        subnet = self._subnet()
        if host not in self.hosts:
            used = set(self.hosts.values())
            free = next((i for i in range(2, HOSTS_MAX + 2) if i not in used), None)
            if free is None:
                raise ConfigError(f"netns mode has room for {HOSTS_MAX} hosts per cluster")
            self.hosts[host] = free
            self._save()
        index = self.hosts[host]
        assert 1 <= index <= HOSTS_MAX + 1
        assert (index == 1) == (host == CONTROL_PLANE)
        return str(subnet.network_address + index)

    def addresses(self) -> dict[str, str]:
        """Every host allocated so far, by name (the faults' view; allocates nothing)."""
        with self._lock:
            if self.subnet is None:
                return {}
            return {host: str(self.subnet.network_address + index)
                    for host, index in self.hosts.items()}

    def namespace(self, host: str) -> str:
        return self.names.namespace(host)

    # -- creating and removing -----------------------------------------------------------
    def attach(self, host: str) -> str:
        with self._lock:
            address = self._address(host)
            self._bridge()
            if host == CONTROL_PLANE:
                return ""
            namespace = self.names.namespace(host)
            index = self.hosts[host]
            if namespace not in _namespaces():
                _run(["ip", "netns", "add", namespace])
            inside = _run(["ip", "-n", namespace, "link", "show", INTERFACE], check=False)
            if inside.returncode != 0:
                veth, peer = self.names.veth(index), self.names.peer(index)
                _run(["ip", "link", "del", veth], check=False)   # a half-made pair
                _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", peer])
                _run(["ip", "link", "set", peer, "netns", namespace])
                _run(["ip", "-n", namespace, "link", "set", peer, "name", INTERFACE])
            _run(["ip", "link", "set", self.names.veth(index), "master", self.names.bridge,
                  "up"])
            _run(["ip", "-n", namespace, "addr", "replace", f"{address}/{PREFIX_LENGTH}",
                  "dev", INTERFACE])
            _run(["ip", "-n", namespace, "link", "set", INTERFACE, "up"])
            _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            log.info("host attached host=%s namespace=%s address=%s", host, namespace, address)
            return namespace

    def _bridge(self) -> None:
        bridge = self.names.bridge
        if _run(["ip", "link", "show", bridge], check=False).returncode != 0:
            _run(["ip", "link", "add", bridge, "type", "bridge"])
        root = self._address(CONTROL_PLANE)
        _run(["ip", "addr", "replace", f"{root}/{PREFIX_LENGTH}", "dev", bridge])
        _run(["ip", "link", "set", bridge, "up"])

    def prepare(self, running: set[str]) -> None:
        with self._lock:
            keep = {self.names.namespace(h) for h in running if h != CONTROL_PLANE}
            for namespace in _namespaces():
                if namespace.startswith(self.names.namespace_prefix) and namespace not in keep:
                    log.info("removing a namespace left behind namespace=%s", namespace)
                    _run(["ip", "netns", "del", namespace], check=False)
            for host, index in self.hosts.items():   # a pair half made when it crashed
                if host != CONTROL_PLANE and self.names.namespace(host) not in keep:
                    _run(["ip", "link", "del", self.names.veth(index)], check=False)
            if not keep:
                _run(["ip", "link", "del", self.names.bridge], check=False)

    def remove(self) -> None:
        with self._lock:
            remove_namespaces(self.data_dir)


def remove_namespaces(data_dir: Path) -> list[str]:
    """Delete every namespace and the bridge named after this data dir, whatever state file
    there is (``borealis down`` without a control plane, the chaos suite's last resort).
    A namespace whose processes still run lives on, nameless, until they exit."""
    names = Names(cluster_tag(data_dir))
    removed = [ns for ns in _namespaces() if ns.startswith(names.namespace_prefix)]
    for namespace in removed:
        _run(["ip", "netns", "del", namespace], check=False)
    if _run(["ip", "link", "del", names.bridge], check=False).returncode == 0:
        removed.append(names.bridge)
    if removed:
        log.info("network namespaces removed data_dir=%s removed=%s", data_dir, removed)
    return removed


def cluster_namespaces(data_dir: Path) -> list[str]:
    """The namespaces of this data dir's cluster that exist now."""
    prefix = Names(cluster_tag(data_dir)).namespace_prefix
    return [ns for ns in _namespaces() if ns.startswith(prefix)]


def network_for(mode: str, data_dir: Path) -> Network:
    if mode == "loopback":
        return LoopbackNetwork()
    assert mode == "netns", mode
    require()
    return NamespaceNetwork(data_dir)


def _namespaces() -> list[str]:
    if shutil.which("ip") is None:
        return []
    listed = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]


def _routes_in_use() -> list[ipaddress.IPv4Network]:
    done = _run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False)
    try:
        routes = json.loads(done.stdout or "[]")
    except ValueError:
        return []
    out = []
    for route in routes:
        dst = str(route.get("dst", ""))
        if dst in ("", "default") or route.get("type") in ("broadcast",):
            continue
        with contextlib.suppress(ValueError):
            out.append(ipaddress.IPv4Network(dst, strict=False))
    return out


def choose_subnet(tag: str, in_use: Iterable[ipaddress.IPv4Network]
                  ) -> ipaddress.IPv4Network:
    """A /24 in 10.128.0.0/9 picked by the tag, the next one while it overlaps a route."""
    taken = list(in_use)
    start = int(tag, 16)
    for attempt in range(SUBNET_TRIES_MAX):
        n = (start + attempt) % (128 * 256)
        subnet = ipaddress.IPv4Network(f"10.{128 + n // 256}.{n % 256}.0/{PREFIX_LENGTH}")
        if not any(subnet.overlaps(route) for route in taken):
            return subnet
    raise ConfigError("no free /24 in 10.128.0.0/9 for the cluster's namespaces")


# --- faults between hosts (the chaos suite) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    """Packets from ``source`` to ``target`` are dropped (one direction)."""

    source: str
    target: str

    def __post_init__(self) -> None:
        assert self.source != self.target, "a host is not partitioned from itself"


@dataclass(frozen=True, slots=True)
class Loss:
    """``percent`` of the packets in and out of ``host`` are dropped, at random."""

    host: str
    percent: int

    def __post_init__(self) -> None:
        assert 0 < self.percent <= LOSS_PERCENT_MAX, self.percent
        assert self.host != CONTROL_PLANE, "loss is set on namespace hosts only"


def ruleset(blocks: Iterable[Block], losses: Iterable[Loss],
            addresses: Mapping[str, str]) -> dict[str, str]:
    """The nft script of each host's chaos table (pure). A block is written in the source's
    output chain, or in the target's input chain when the source is the control plane."""
    output: dict[str, set[str]] = {}
    input_: dict[str, set[str]] = {}
    for b in blocks:
        if b.source != CONTROL_PLANE:
            output.setdefault(b.source, set()).add(addresses[b.target])
        else:
            input_.setdefault(b.target, set()).add(addresses[b.source])
    loss = {x.host: x.percent for x in losses}
    scripts = {}
    for host in sorted(set(output) | set(input_) | set(loss)):
        assert host != CONTROL_PLANE
        chains: dict[str, list[str]] = {"input": [], "output": []}
        if host in input_:
            chains["input"].append(f"ip saddr {_set(input_[host])} drop")
        if host in output:
            chains["output"].append(f"ip daddr {_set(output[host])} drop")
        if host in loss:
            chains["input"].append(f'iifname "{INTERFACE}" numgen random mod 100 '
                                   f"< {loss[host]} drop")
            chains["output"].append(f'oifname "{INTERFACE}" numgen random mod 100 '
                                    f"< {loss[host]} drop")
        lines = [f"add table inet {CHAOS_TABLE}", f"delete table inet {CHAOS_TABLE}",
                 f"table inet {CHAOS_TABLE} {{"]
        for chain, rules in chains.items():
            lines.append(f"  chain {chain} {{")
            lines.append(f"    type filter hook {chain} priority {CHAOS_PRIORITY}; "
                         "policy accept;")
            lines += [f"    {rule}" for rule in rules]
            lines.append("  }")
        lines.append("}")
        scripts[host] = "\n".join(lines) + "\n"
    return scripts


def _set(addresses: set[str]) -> str:
    return "{ " + ", ".join(sorted(addresses, key=ipaddress.IPv4Address)) + " }"


def between(sources: Iterable[str], targets: Iterable[str], *,
            both_ways: bool = True) -> list[Block]:
    """The blocks that cut ``sources`` off from ``targets`` (or only their packets to them)."""
    sources, targets = sorted(set(sources)), sorted(set(targets))
    blocks = [Block(s, t) for s in sources for t in targets if s != t]
    if both_ways:
        blocks += [Block(t, s) for s in sources for t in targets if s != t]
    return blocks


@dataclass
class Faults:
    """Partitions and packet loss between one cluster's hosts; ``heal`` removes them all.

    Faults add up until ``heal``; each change rewrites the chaos table of the namespaces it
    touches in one nft transaction."""

    data_dir: Path
    blocks: set[Block] = field(default_factory=set)
    losses: dict[str, Loss] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require()
        self.data_dir = self.data_dir.resolve()
        self.names = Names(cluster_tag(self.data_dir))

    def addresses(self) -> dict[str, str]:
        return NamespaceNetwork(self.data_dir).addresses()

    def block(self, sources: Iterable[str], targets: Iterable[str], *,
              both_ways: bool = True) -> list[Block]:
        """Drop packets from every source to every target (and back, ``both_ways``)."""
        added = between(sources, targets, both_ways=both_ways)
        self._check_hosts({h for b in added for h in (b.source, b.target)})
        self.blocks.update(added)
        self._apply()
        return added

    def lose(self, hosts: Iterable[str], percent: int) -> None:
        """Drop ``percent`` % of the packets in and out of each host, at random."""
        chosen = set(hosts)
        self._check_hosts(chosen)
        for host in chosen:
            self.losses[host] = Loss(host, percent)
        self._apply()

    @property
    def active(self) -> bool:
        return bool(self.blocks or self.losses)

    def heal(self) -> list[str]:
        """Delete the chaos table of every namespace of the cluster (idempotent: a table or
        a namespace that is gone is nothing to heal). Returns the namespaces healed."""
        self.blocks.clear()
        self.losses.clear()
        healed = []
        for namespace in cluster_namespaces(self.data_dir):
            done = _run(["ip", "netns", "exec", namespace, "nft", "-f", "-"],
                        stdin=f"add table inet {CHAOS_TABLE}\n"
                              f"delete table inet {CHAOS_TABLE}\n", check=False)
            if done.returncode == 0:
                healed.append(namespace)
            else:
                log.warning("heal namespace=%s: %s", namespace, done.stderr.strip())
        return healed

    def _check_hosts(self, hosts: set[str]) -> None:
        unknown = hosts - set(self.addresses())
        if unknown:
            raise NetnsError(f"no such hosts in the cluster's network: {sorted(unknown)}")

    def _apply(self) -> None:
        addresses = self.addresses()
        for host, script in ruleset(self.blocks, self.losses.values(), addresses).items():
            _run(["ip", "netns", "exec", self.names.namespace(host), "nft", "-f", "-"],
                 stdin=script)
