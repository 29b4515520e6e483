"""What a second run of an unchanged policy and suite costs: every episode comes from the cache.

Runs the navigation suite with the shipped checkpoint three times as a user would (`pytest`, one
process each, a fresh data dir): cold, then again unchanged, then with `--no-eval-cache`. It also
times a run that collects the suite and evaluates nothing (`--collect-only`), which is process
start-up. Prints the wall time of each, the second run's time beyond start-up as a share of the
first's, the episodes read from the cache, and whether every per-episode result is identical.

    python benchmarks/bench_eval_cache.py [--suite suites/navigation.yaml] [--policy PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], data: Path, out: Path | None) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    if out is not None:
        command += ["--eval-json", str(out)]
    env = {**os.environ, "POLICYEVAL_DATA_DIR": str(data)}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def tasks(path: Path) -> dict:
    document = json.loads(path.read_text())
    return {
        (p["policy_uri"], name): detail
        for p in document["policies"]
        for name, detail in p["checkpoints"][0]["metrics"]["tasks"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="suites/navigation.yaml")
    parser.add_argument("--policy", default="examples/policies/navigation.pt")
    options = parser.parse_args()
    base = [options.suite, "--policy-uri", options.policy]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        startup = run([*base, "--collect-only"], tmp / "data", None)
        cold = run(base, tmp / "data", tmp / "cold.json")
        warm = run(base, tmp / "data", tmp / "warm.json")
        again = run([*base, "--no-eval-cache"], tmp / "data", tmp / "again.json")
        first, second, third = tasks(tmp / "cold.json"), tasks(tmp / "warm.json"), tasks(tmp / "again.json")
    fields = ("seeds", "episode_scores", "episode_rewards", "episode_steps", "outcome", "num_episodes")
    same = all(first[k][f] == second[k][f] == third[k][f] for k in first for f in fields)
    cached = sum(sum(d["episode_cached"]) for d in second.values())
    used = sum(len(d["episode_cached"]) for d in second.values())
    print(f"start-up (collect only)   {startup:7.2f} s")
    print(f"first run (cold cache)    {cold:7.2f} s")
    print(f"second run (unchanged)    {warm:7.2f} s   episodes from the cache: {cached} of {used}")
    print(f"--no-eval-cache           {again:7.2f} s")
    share = (warm - startup) / max(cold - startup, 1e-9)
    print(f"second run beyond start-up: {share:.1%} of the first's (target <= 10%)")
    print(f"per-episode results identical across the three runs: {same}")


if __name__ == "__main__":
    main()
