"""Do the navigation suite's verdicts still flip with the seed? The shipped checkpoint, before and after.

For each task of suites/navigation.yaml: the true mean from a large number of episodes (seed
10_000, `--true-episodes`, default 1000), then the suite run with seeds 1..20 under the old rule
(`gate: mean`, 10 episodes) and under the sequential gate (the suite as shipped). Prints per task:
the true mean, its distance from the threshold in margins, the pass counts over the 20 seeds
before and after, the wrong verdicts after (a fail when the true mean is above the threshold, a
pass when it is below), the episodes used (mean and max), and how many runs were inconclusive.

Rules the sequential gate must keep: no task more than 2 margins from its threshold changes its
verdict with the seed; between 1 and 2 margins, wrong verdicts stay within alpha (bad side) or
beta / K (good side, Bonferroni over the suite's K gated tasks) up to sampling error.

Episodes go through the per-episode cache (`--data-dir`), so a second run re-decides from them
in seconds. Run: python benchmarks/study_navigation_gates.py [--true-episodes N] [--seeds N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_policyeval.collection.suite import load_suite  # noqa: E402
from pytest_policyeval.episode_cache import EpisodeCache  # noqa: E402
from pytest_policyeval.gating import episodes_key, gate_design, verdict  # noqa: E402
from pytest_policyeval.policies import LoadOptions, load_policy  # noqa: E402
from pytest_policyeval.rounds import Episodes, gate_task  # noqa: E402
from pytest_policyeval.runner import play_episodes  # noqa: E402


def player(task, policy):
    def play(indices):
        rollout = play_episodes(task, policy, indices=indices)
        return rollout.episodes, rollout.wall_time_s, rollout.agent_steps

    return play


def evaluate(task, policy, cache, first_round=None):
    key, meta = episodes_key(task, policy, None, "cpu")
    episodes = Episodes(player(task, policy), cache, key, meta)
    run = gate_task(gate_design(task), episodes, first_round or task.settings.num_episodes, trace=False)
    return run, episodes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--true-episodes", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/policyeval-navigation-study"))
    parser.add_argument("--policy", default=str(ROOT / "examples/policies/navigation.pt"))
    args = parser.parse_args()
    cache = EpisodeCache(args.data_dir)
    suite = load_suite(ROOT / "suites/navigation.yaml")
    policy = load_policy(args.policy, LoadOptions())
    started = time.perf_counter()
    rows = []
    for task in suite.tasks:
        truth_task = dataclasses.replace(task, seed=10_000).with_settings(
            gate="mean", num_episodes=args.true_episodes
        )
        truth, _ = evaluate(truth_task, policy, cache)
        true_mean = float(np.mean([e.score for e in truth.episodes]))
        design = gate_design(task)
        distance = (true_mean - design.threshold) / design.margin
        before, after, wrong, used, inconclusive = 0, 0, 0, [], 0
        for seed in range(1, args.seeds + 1):
            seeded = dataclasses.replace(task, seed=seed)
            old, _ = evaluate(seeded.with_settings(gate="mean"), policy, cache)
            before += bool(old.decision.outcome == "pass")
            new, _ = evaluate(seeded, policy, cache)
            passed = verdict(new.decision.outcome, task.settings.inconclusive)
            after += bool(passed)
            inconclusive += new.decision.outcome == "inconclusive"
            wrong += (new.decision.outcome == "fail" and distance > 0) or (
                new.decision.outcome == "pass" and distance < 0
            )
            used.append(new.decision.episodes)
        rows.append(
            (
                task.name,
                true_mean,
                task.settings.threshold,
                distance,
                before,
                after,
                wrong,
                inconclusive,
                used,
            )
        )
        print(
            f"{task.name:36s} true {true_mean:6.3f}  threshold {design.threshold:4g}  "
            f"{distance:+6.2f} margins  pass before {before:2d}/{args.seeds}  after {after:2d}/{args.seeds}  "
            f"wrong after {wrong:2d}  inconclusive {inconclusive:2d}  episodes mean {np.mean(used):6.1f} "
            f"max {max(used):4d}",
            flush=True,
        )
    flips_before = sum(1 for r in rows if 0 < r[4] < args.seeds)
    flips_after = sum(1 for r in rows if 0 < r[5] < args.seeds)
    far = [r for r in rows if abs(r[3]) > 2]
    far_flips = sum(1 for r in far if 0 < r[5] < args.seeds)
    print(
        f"\ntasks whose verdict changes with the seed: before {flips_before} of {len(rows)}, "
        f"after {flips_after} of {len(rows)}; more than 2 margins from the threshold: "
        f"{len(far)} tasks, {far_flips} flip after"
    )
    per_run = np.mean([sum(r[8][i] for r in rows) for i in range(args.seeds)])
    print(
        f"episodes per suite run after: {per_run:.0f} "
        f"(before: {10 * len(rows)}); wall {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
