"""Routes: where a process's connections to a peer really go, for fault injection.

The chaos suite puts a fault proxy between processes (``borealis.chaos.faultproxy``) with a
link per caller and target, so that it can delay, stall, duplicate or cut the traffic of one
pair without touching the others. Nothing in the cluster has to know: every process opens its
RPC connections through a ``ConnectionPool``, and a pool built with a caller name asks its
``Routes`` where an address really is. The routes come from the JSON file named by the
environment variable ``BOREALIS_ROUTES`` (inherited from ``borealis up`` by every process the
control plane starts)::

    {"routes": {"i1": {"127.0.0.1:7001": "127.0.0.1:9101", ...}, "az1-n1": {...}}}

Callers are instance ids, storage node ids and ``control-plane``. An address without a route
is reached directly, and so is everything when the variable is unset (the normal case: then
``resolve`` costs one dictionary lookup). The file may be written after the processes start
(their ports are chosen by the system) and changed at any time: it is read again when its
modification time changes, at most every ``CHECK_EVERY_S``, and a pool drops a connection
whose route changed, so the next call takes the new one. A file that cannot be read or
parsed keeps the routes last read, with a warning: a fault-injection hook must never be what
brings a process down.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "BOREALIS_ROUTES"
CHECK_EVERY_S = 0.25


class Routes:
    def __init__(self, path: Path | None, caller: str, *,
                 check_every_s: float = CHECK_EVERY_S) -> None:
        self.path = path
        self.caller = caller
        self.check_every_s = check_every_s
        self._table: dict[str, str] = {}
        self._mtime_ns = -1
        self._checked_s = float("-inf")
        self._complained = ""

    @classmethod
    def from_env(cls, caller: str) -> Routes:
        value = os.environ.get(ENV, "")
        return cls(Path(value) if value else None, caller)

    def resolve(self, address: str) -> str:
        """Where a connection to ``address`` goes now: a proxy's link, or ``address``."""
        if self.path is None:
            return address
        now = time.monotonic()
        if now - self._checked_s >= self.check_every_s:
            self._checked_s = now
            self._reload()
        return self._table.get(address, address)

    def _reload(self) -> None:
        assert self.path is not None
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            if self._table:
                log.info("routes file %s removed: connecting directly again", self.path)
            self._table, self._mtime_ns = {}, -1
            return
        except OSError as exc:
            self._complain(f"cannot stat the routes file {self.path}: {exc}")
            return
        if mtime_ns == self._mtime_ns:
            return
        try:
            document = json.loads(self.path.read_bytes())
            table = document.get("routes", {}).get(self.caller, {})
            if not isinstance(table, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
                raise ValueError(f"routes for {self.caller!r} must map addresses to addresses")
        except (OSError, ValueError, AttributeError) as exc:
            # (A writer that replaces the file atomically never shows a half-written one.)
            self._complain(f"routes file {self.path} ignored: {exc}")
            return
        self._mtime_ns = mtime_ns
        if table != self._table:
            log.info("routes of %s: %d addresses through the fault proxy", self.caller,
                     len(table))
        self._table = dict(table)
        self._complained = ""

    def _complain(self, message: str) -> None:
        if message != self._complained:
            log.warning("%s", message)
            self._complained = message


def write_routes(path: Path, routes: dict[str, dict[str, str]]) -> None:
    """Replace the routes file atomically (readers never see a half-written one)."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps({"routes": routes}, indent=1, sort_keys=True))
    os.replace(scratch, path)
