"""Parallel benchmark: wall-clock time of one suite run serially and with `pytest -n 2`.

    python benchmarks/bench_parallel.py                          # 300 and 1000 episodes/task, ~17 min
    python benchmarks/bench_parallel.py --episodes 100 --repeat 3

Each configuration is a fresh `pytest` process (start-up, imports and policy loading included).
Printed per run length: serial (torch's default thread pool, as a user runs it), serial with one
torch thread (the work a worker does), and `-n 2` with each xdist scheduler (`load`, the default,
`worksteal`, `loadgroup`), with speedups over serial. The configurations take turns, `--repeat`
rounds, and the best time of each counts: a machine whose speed drifts during the benchmark
then slows every configuration alike. The default suite has 13 tasks of very different lengths
(30 to 1000 steps).

Each worker pays about a second more of fixed cost than the serial run (it starts after the
controller, and one worker waits for the other's last task at the end), so the speedup grows
with the run's length; the last line prints it for each length.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEDULERS = ("load", "worksteal", "loadgroup")


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


def measure(base: list[str], repeat: int, env: dict[str, str]) -> dict[str, float]:
    """Best wall time of each configuration, the configurations taking turns."""
    configurations = [
        ("serial", [], env),
        ("serial, 1 torch thread", [], {**env, "OMP_NUM_THREADS": "1"}),
        *((f"-n 2 --dist {name}", ["-n", "2", "--dist", name], env) for name in SCHEDULERS),
    ]
    times: dict[str, float] = {}
    for _ in range(repeat):
        for name, extra, environment in configurations:
            times[name] = min(times.get(name, float("inf")), run(base + extra, environment))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="suites/navigation.yaml")
    parser.add_argument("--policy-uri", default="pytorch://examples/policies/navigation.pt")
    parser.add_argument(
        "--episodes", type=int, nargs="+", default=[300, 1000], help="episodes per task (one or more)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best time of each counts")
    args = parser.parse_args()

    # Python's defaults, as on a user's machine: torch picks its thread count, and bytecode is
    # cached (with PYTHONDONTWRITEBYTECODE every process, each worker too, compiles every module).
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")}
    base = [args.suite, "--policy-uri", args.policy_uri, "--no-eval-cache"]  # every episode played
    run([*base, "--num-episodes", "1", "-n", "2"], env)  # warm-up: every cache filled before timing
    print(f"{args.suite}, {args.policy_uri}, {os.cpu_count()} cores, best of {args.repeat}")
    headline = []
    for episodes in args.episodes:
        times = measure([*base, "--num-episodes", str(episodes)], args.repeat, env)
        print(f"{episodes} episodes per task:")
        for name, seconds in times.items():
            print(f"  {name:<24} {seconds:7.2f} s")
        serial, single = times["serial"], times["serial, 1 torch thread"]
        for name in SCHEDULERS:
            wall = times[f"-n 2 --dist {name}"]
            ratios = f"{serial / wall:.2f}x over serial, {single / wall:.2f}x over 1 thread"
            print(f"  speedup -n 2 --dist {name:<10} {ratios}")
        headline.append((episodes, serial, serial / times["-n 2 --dist load"]))
    print("speedup of -n 2 (default scheduler) over serial, by run length:")
    for episodes, serial, speedup in headline:
        print(f"  {episodes:>6} episodes per task ({serial:5.1f} s serial): {speedup:.2f}x")


if __name__ == "__main__":
    main()
