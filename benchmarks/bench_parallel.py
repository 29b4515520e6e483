"""Parallel benchmark: wall-clock time of one suite run serially and with `pytest -n 2`.

    python benchmarks/bench_parallel.py [--episodes 300] [--suite suites/navigation.yaml]

Each configuration is a fresh `pytest` process (start-up, imports and policy loading included),
run `--repeat` times; the best time counts. Printed: serial (torch's default thread pool, as a
user runs it), serial with one torch thread (the work a worker does), and `-n 2` with each xdist
scheduler (`load`, `worksteal`, `loadgroup`), with speedups over serial. The default suite has 13
tasks of very different lengths (30 to 1000 steps).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:importnb", "-p", "no:cacheprovider", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some gates failed, which is fine here
        raise SystemExit(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="suites/navigation.yaml")
    parser.add_argument("--policy-uri", default="pytorch://examples/policies/navigation.pt")
    parser.add_argument("--episodes", type=int, default=300, help="episodes per task")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    base = [args.suite, "--policy-uri", args.policy_uri, "--num-episodes", str(args.episodes)]
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    configurations = [
        ("serial", [], env),
        ("serial, 1 torch thread", [], {**env, "OMP_NUM_THREADS": "1"}),
        ("-n 2 --dist load", ["-n", "2", "--dist", "load"], env),
        ("-n 2 --dist worksteal", ["-n", "2", "--dist", "worksteal"], env),
        ("-n 2 --dist loadgroup", ["-n", "2", "--dist", "loadgroup"], env),
    ]
    print(f"{args.suite}, {args.policy_uri}, {args.episodes} episodes per task, {os.cpu_count()} cores")
    times: dict[str, float] = {}
    for name, extra, environment in configurations:
        times[name] = min(run(base + extra, environment) for _ in range(args.repeat))
        print(f"  {name:<24} {times[name]:7.2f} s", flush=True)
    serial, single = times["serial"], times["serial, 1 torch thread"]
    for name in ("-n 2 --dist load", "-n 2 --dist worksteal", "-n 2 --dist loadgroup"):
        ratios = f"{serial / times[name]:.2f}x over serial, {single / times[name]:.2f}x over 1 thread"
        print(f"  speedup {name:<22} {ratios}")


if __name__ == "__main__":
    main()
