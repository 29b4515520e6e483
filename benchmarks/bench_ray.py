"""Ray benchmark: one suite run serially, with `pytest -n 2`, and on Ray, in one run.

    python benchmarks/bench_ray.py                       # navigation, 300 episodes/task, ~5 min
    python benchmarks/bench_ray.py --episodes 100 --repeat 3

Each configuration is a fresh `pytest` process (start-up, imports, policy loading included), with
the episode cache off so every episode is played:

- serial;
- `-n 2` (xdist, the default scheduler);
- `--eval-ray local`: the run starts a Ray cluster of this machine's CPUs and stops it at the end;
- `--eval-ray ADDRESS`: a cluster already up on 127.0.0.1, a head that runs nothing and two
  one-CPU worker nodes, as a user with a standing cluster runs it.

The configurations take turns and the best time of each counts. Printed: the times, Ray's ratio to
`-n 2` (the target is within 10%), and the per-task costs measured from the serial run's results
(their sum, the longest task) from which the README's estimate for more nodes is made.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_parallel import run  # the same timed pytest process
from ray_cluster import RAY_ENV, local_cluster


def task_costs(path: Path) -> list[float]:
    data = json.loads(path.read_text())
    return [
        task["wall_time_s"]
        for policy in data["policies"]
        for checkpoint in policy["checkpoints"]
        for task in checkpoint["metrics"]["tasks"].values()
    ]


def scheduling_overhead(address: str, count: int = 200) -> tuple[float, float]:
    """Seconds per empty Ray task on the cluster: one after another, and all submitted at once."""
    import time

    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        noop = ray.remote(num_cpus=1)(lambda: None)
        ray.get([noop.remote() for _ in range(4)])  # workers started before timing
        start = time.perf_counter()
        for _ in range(count):
            ray.get(noop.remote())
        one = (time.perf_counter() - start) / count
        start = time.perf_counter()
        ray.get([noop.remote() for _ in range(count)])
        batch = (time.perf_counter() - start) / count
    finally:
        ray.shutdown()
    return one, batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="suites/navigation.yaml")
    parser.add_argument("--policy-uri", default="pytorch://examples/policies/navigation.pt")
    parser.add_argument("--episodes", type=int, default=300, help="episodes per task")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best time of each counts")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")}
    env.update(RAY_ENV)
    os.environ.update(RAY_ENV)

    out = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    base = [args.suite, "--policy-uri", args.policy_uri, "--no-eval-cache", "--num-episodes"]
    run([*base, "1", "-n", "2"], env)  # warm-up: bytecode caches filled before timing
    with local_cluster(workers=2, cpus=1) as (cluster, _):
        configurations = [
            ("serial", ["--eval-json", str(out / "serial.json")]),
            ("-n 2", ["-n", "2"]),
            ("ray, local (started by the run)", ["--eval-ray", "local"]),
            ("ray, cluster already up", ["--eval-ray", cluster.address]),
        ]
        times: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, extra in configurations:
                seconds = run([*base, str(args.episodes), *extra], env)
                times[name] = min(times.get(name, float("inf")), seconds)
        overhead = scheduling_overhead(cluster.address)
    print(
        f"{args.suite}, {args.policy_uri}, {args.episodes} episodes per task, {os.cpu_count()} cores, "
        f"best of {args.repeat}"
    )
    for name, seconds in times.items():
        print(f"  {name:<34} {seconds:7.2f} s")
    xdist = times["-n 2"]
    for name in ("ray, local (started by the run)", "ray, cluster already up"):
        print(f"  {name} / -n 2: {times[name] / xdist:.3f}")
    costs = task_costs(out / "serial.json")
    total, longest = sum(costs), max(costs)
    print(f"per-task evaluation (serial): {len(costs)} tasks, sum {total:.2f} s, longest {longest:.2f} s")
    one, batch = (seconds * 1e3 for seconds in overhead)
    print(f"ray scheduling: {one:.2f} ms per task one at a time, {batch:.2f} ms per task in a batch")
    # The run's fixed part: what -n 2 took beyond its share of the tasks' work.
    fixed = max(0.0, xdist - total / 2)
    print(f"estimate for a standing cluster of N one-CPU nodes (fixed part {fixed:.1f} s, from -n 2):")
    for nodes in (1, 2, 4, 8, 16, 32):
        wall = fixed + max(longest, total / nodes) + len(costs) * overhead[1]
        print(f"  {nodes:>3} nodes: {wall:6.1f} s, {len(costs) * args.episodes / wall:7.0f} episodes/s")


if __name__ == "__main__":
    main()
