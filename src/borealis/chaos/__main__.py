"""``python -m borealis.chaos``: run a workload against a nemesis and judge the history.

    python -m borealis.chaos --workload W --nemesis N --time S --clients C [--out DIR] [--seed N]
        [--network auto|netns|proxy]
    python -m borealis.chaos --matrix short|long [--out DIR] [--seed N] [--clients C] [--time S]
        [--healthy-wait S]
    python -m borealis.chaos --check DIR        # judge a stored run again
    python -m borealis.chaos --oracle postgres --workload W
        --isolation repeatable-read|serializable|read-committed
        [--time S (default 10)] [--clients C] [--keys K] [--seed N] [--out DIR]

Each run starts its own cluster, writes ``history.jsonl``, ``events.json``, ``run.json``,
``verdict.json`` and the processes' logs into its directory, and prints a one-line JSON
summary last. Exit status: 0 valid, 1 a violation, 2 a usage error or a nemesis not
implemented yet, 3 undecided (a checker could not decide, e.g. no final read succeeded, or
the run could not be carried out).

``--network`` chooses what cuts links for ``partition`` and ``partition-one-way``: nftables
between network namespaces (netns, root only) or the fault proxy (proxy); auto, the
default, takes netns where it works. ``BOREALIS_CHAOS_NETWORK`` says the same
(``nemesis_net.register``).

With ``--oracle postgres`` the workload runs against a throwaway stock PostgreSQL 15 instead
(``.oracle``), at the isolation level given, to check the checkers: it prints one JSON line
whose ``as_expected`` says whether they found exactly what that level allows; exit status 0
if so, 1 if not, 3 undecided.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from borealis.chaos import oracle
from borealis.chaos.clients import Isolation
from borealis.chaos.nemesis import NEMESES, NOT_IMPLEMENTED
from borealis.chaos.nemesis_net import IMPLEMENTATIONS
from borealis.chaos.nemesis_net import register as register_network_nemeses
from borealis.chaos.runner import (
    HEALTHY_WAIT_S,
    MATRICES,
    ChaosRunError,
    NotImplementedNemesis,
    RunConfig,
    default_out,
    judge,
    load_run,
    run,
    summary,
)
from borealis.chaos.workloads import WORKLOADS
from borealis.errors import BorealisError

EXIT_VALID = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m borealis.chaos",
                                description="Jepsen-style fault injection against a cluster "
                                "of its own (see docs/reliability.md).")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--workload", choices=sorted(WORKLOADS))
    what.add_argument("--matrix", choices=sorted(MATRICES))
    what.add_argument("--check", type=Path, metavar="DIR", help="judge a stored run again")
    p.add_argument("--nemesis", default="none",
                   choices=sorted([*NEMESES, *NOT_IMPLEMENTED]))
    p.add_argument("--time", type=float, help="seconds of workload (default 30; the "
                   "matrix's own for --matrix)")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--seed", type=int, default=None, help="default: from the clock, printed")
    p.add_argument("--out", type=Path, help="where the run's files go (default: a new "
                   "temporary directory)")
    p.add_argument("--healthy-wait", type=float, default=HEALTHY_WAIT_S, metavar="S",
                   help="after the clients stop, how long to wait for the cluster to be "
                   f"whole again before the final reads (default {HEALTHY_WAIT_S:.0f})")
    p.add_argument("--network", choices=IMPLEMENTATIONS, default=None,
                   help="what cuts links for partition and partition-one-way: nftables "
                   "between network namespaces (netns, root only) or the fault proxy "
                   "(proxy); default: BOREALIS_CHAOS_NETWORK, else auto (netns where it "
                   "works)")
    p.add_argument("--log-level", default="INFO")
    checkers = p.add_argument_group("checking the checkers against a stock PostgreSQL")
    checkers.add_argument("--oracle", choices=oracle.ORACLES,
                          help="run --workload against a throwaway stock PostgreSQL 15")
    checkers.add_argument("--isolation", choices=sorted(i.value for i in oracle.EXPECTATIONS),
                          default=Isolation.SERIALIZABLE.value,
                          help="the level the oracle's transactions run at")
    checkers.add_argument("--keys", type=int, default=oracle.KEYS_DEFAULT,
                          help="list-append's active keys: fewer, more contention "
                          f"(default {oracle.KEYS_DEFAULT})")
    checkers.add_argument("--pg-bin", type=Path, default=oracle.PG_BIN_DEFAULT,
                          help=f"PostgreSQL's server programs (default {oracle.PG_BIN_DEFAULT})")
    checkers.add_argument("--pg-user", default=oracle.PG_OS_USER_DEFAULT,
                          help="the OS user PostgreSQL runs as when this runs as root")
    return p


def _exit_code(valid: Any) -> int:
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_VIOLATION
    return EXIT_UNKNOWN


def _print(line: dict[str, Any]) -> None:
    print(json.dumps(line, default=str), flush=True)


def _one(args: argparse.Namespace, workload: str, nemesis: str, time_s: float, seed: int,
         out: Path) -> dict[str, Any]:
    config = RunConfig(workload=workload, nemesis=nemesis, time_s=time_s,
                       clients=args.clients, seed=seed, out=out,
                       healthy_wait_s=args.healthy_wait)
    logging.getLogger(__name__).info("run workload=%s nemesis=%s time_s=%s clients=%d "
                                     "seed=%d out=%s", workload, nemesis, time_s, args.clients,
                                     seed, out)
    return summary(run(config), out)


def _oracle(args: argparse.Namespace, seed: int) -> int:
    if args.workload is None or args.nemesis != "none":
        raise ChaosRunError("--oracle runs a --workload, without a nemesis")
    config = oracle.OracleConfig(workload=args.workload, isolation=Isolation(args.isolation),
                                 time_s=args.time or 10.0, clients=args.clients, seed=seed,
                                 keys=args.keys, bin_dir=args.pg_bin, os_user=args.pg_user,
                                 out=args.out)
    verdict = oracle.run_oracle(config)
    _print(oracle.summary(verdict))
    return _exit_code(verdict["as_expected"])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    if args.network is not None:
        register_network_nemeses(NEMESES, NOT_IMPLEMENTED, requested=args.network)
    try:
        if args.oracle is not None:
            return _oracle(args, seed)
        if args.workload is not None and args.nemesis in NOT_IMPLEMENTED:
            raise NotImplementedNemesis(f"nemesis {args.nemesis}: "
                                        f"{NOT_IMPLEMENTED[args.nemesis]}")
        if args.check is not None:
            verdict = judge(*load_run(args.check))
            (args.check / "verdict.json").write_text(json.dumps(verdict, indent=1, default=str))
            _print(summary(verdict, args.check))
            return _exit_code(verdict["valid"])
        if args.matrix is not None:
            time_s, combinations = MATRICES[args.matrix]
            time_s = args.time or time_s
            root = args.out or default_out(f"matrix-{args.matrix}")
            lines = []
            for workload, nemesis in combinations:
                line = _one(args, workload, nemesis, time_s, seed, root / f"{workload}-{nemesis}")
                lines.append(line)
                _print(line)
            valid: Any = True
            if any(line["valid"] is False for line in lines):
                valid = False
            elif any(line["valid"] is not True for line in lines):
                valid = "unknown"
            _print({"matrix": args.matrix, "runs": len(lines), "valid": valid, "seed": seed,
                    "invalid": [f"{x['workload']}x{x['nemesis']}" for x in lines
                                if x["valid"] is not True], "out": str(root)})
            return _exit_code(valid)
        out = args.out or default_out(f"{args.workload}-{args.nemesis}")
        line = _one(args, args.workload, args.nemesis, args.time or 30.0, seed, out)
        _print({**line, "seed": seed})
        return _exit_code(line["valid"])
    except NotImplementedNemesis as exc:
        print(f"error: {exc}", file=sys.stderr)
        _print({"nemesis": args.nemesis, "error": "not implemented yet", "why": str(exc)})
        return EXIT_USAGE
    except ChaosRunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BorealisError as exc:
        # The cluster did not start or could not be driven: no verdict either way.
        print(f"error: the run could not be carried out: {exc}", file=sys.stderr)
        _print({"error": "run failed", "why": str(exc)})
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
