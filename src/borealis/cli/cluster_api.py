"""The CLI's side of the control plane's HTTP API (``control.api``): find it, call it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from borealis.errors import BorealisError

DATA_DIR_DEFAULT = Path(".borealis")
TIMEOUT_S = 30.0


class NotRunning(BorealisError):
    """No control plane serves this data dir."""


def data_dir_argument(parser: Any) -> None:
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR_DEFAULT,
                        help="the cluster's data dir (default: ./.borealis)")


def control_ready(data_dir: Path) -> dict[str, Any] | None:
    """The running control plane's ready file, if its process is this data dir's."""
    from borealis.control.plane import owned

    path = data_dir.resolve() / "control" / "ready.json"
    try:
        ready: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not owned(int(ready.get("pid") or 0), "control-plane", str(data_dir.resolve())):
        return None
    return ready


def call(data_dir: Path, method: str, path: str, body: Any = None, *,
         timeout_s: float = TIMEOUT_S) -> Any:
    ready = control_ready(data_dir)
    if ready is None:
        raise NotRunning(f"no cluster is running in {data_dir} (start it: borealis up "
                         f"--data-dir {data_dir})")
    return request(str(ready["address"]), method, path, body, timeout_s=timeout_s)


def request(address: str, method: str, path: str, body: Any = None, *,
            timeout_s: float = TIMEOUT_S) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise BorealisError(str(message)) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise BorealisError(f"the control plane at {address} did not answer: {exc}") from None
