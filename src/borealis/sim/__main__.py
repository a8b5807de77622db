"""``python -m borealis.sim --seeds N --seed-start S [--scenario NAME]``.

Exits non-zero if any seed finds a violation, and prints every failing seed with the
command that replays it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from borealis.sim.runner import run_seed
from borealis.sim.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m borealis.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed")
    parser.add_argument(
        "--scenario", default="all", choices=["all", *SCENARIOS],
        help="a named scenario, or all of them in turn (default)",
    )
    parser.add_argument("--duration", type=float, default=0.4,
                        help="virtual seconds of load and faults per seed")
    parser.add_argument("--quiet", action="store_true", help="only failures and the summary")
    args = parser.parse_args(argv)
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    started = time.perf_counter()
    failures = 0
    runs = 0
    virtual_s = 0.0
    steps = 0
    commits = 0
    reads = 0
    checkpoints = 0
    trimmed_restarts = 0
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        scenario = scenarios[(seed - args.seed_start) % len(scenarios)]
        result = run_seed(seed, scenario, duration_s=args.duration)
        runs += 1
        virtual_s += result.virtual_s
        steps += result.steps
        commits += result.commits_acked
        reads += result.reads_checked
        checkpoints += result.checkpoints
        trimmed_restarts += result.trimmed_restarts
        if not result.ok:
            failures += 1
            print(f"FAIL seed={seed} scenario={scenario}: {result.message}", flush=True)
            print(f"  replay: python -m borealis.sim --seeds 1 --seed-start {seed} "
                  f"--scenario {scenario}", flush=True)
        elif not args.quiet:
            print(f"ok   seed={seed} scenario={scenario} commits={result.commits_acked} "
                  f"reads={result.reads_checked} steps={result.steps}", flush=True)
    wall = time.perf_counter() - started
    summary = {
        "seeds": runs, "violations": failures, "simulated_s": round(virtual_s, 3),
        "steps": steps, "commits_acked": commits, "reads_checked": reads,
        "wall_s": round(wall, 2), "events_per_s": round(steps / wall) if wall else 0,
        "checkpoints": checkpoints, "trimmed_restarts": trimmed_restarts,
    }
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
