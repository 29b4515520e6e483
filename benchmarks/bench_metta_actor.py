"""Metta actor benchmark: what reproducing Metta's box encoding costs per policy call.

Metta's encoder writes the box with an indexed assignment (of two tokens for one channel and cell
the later wins); the actor reproduces that by dropping the earlier of any repeated cell before
the sparse encoder sums (`adapter.keep_last`). This times `MettaActor.act` on real observations
of a navigation and a laser_tag task, side by side in one run: as shipped, and with `keep_last`
replaced by the identity (a plain sum, what the encoder did before). Both network sizes: the
shipped examples' (32 channels, LSTM 128) and Metta's default (128, 512).

    python benchmarks/bench_metta_actor.py [--rows 256] [--repeat 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_policyeval.collection.suite import load_suite  # noqa: E402
from pytest_policyeval.engines.mettagrid.simulation import EpisodeBatch  # noqa: E402
from pytest_policyeval.policies import load_policy  # noqa: E402
from pytest_policyeval.policies.metta import adapter  # noqa: E402
from pytest_policyeval.policies.metta.network import Policy, Recurrent  # noqa: E402


def observations(suite: str, rows: int) -> tuple[object, np.ndarray]:
    """Observations of `rows` agents a few random steps into their episodes."""
    task = load_suite(REPO / f"suites/{suite}.yaml").tasks[0]
    agents = EpisodeBatch(task, [0]).spec.num_agents
    batch = EpisodeBatch(task, list(range(max(1, rows // agents))))
    rng = np.random.default_rng(0)
    for _ in range(5):
        batch.actions[:] = rng.integers(1, 5, len(batch.actions))
        batch.step(list(range(batch.num_episodes)))
    obs = batch.observations.copy()
    spec = batch.spec
    batch.close()
    return spec, obs


def time_act(policy, spec, obs: np.ndarray, repeat: int) -> float:
    actor = policy.actor(spec)
    slots = np.arange(len(obs))
    actor.reset(slots.astype(np.uint64))
    actor.act(obs, slots, 0)  # warm-up
    start = time.perf_counter()
    for step in range(repeat):
        actor.act(obs, slots, step + 1)
    return (time.perf_counter() - start) / (repeat * len(obs)) * 1e6  # microseconds per agent-step


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=256, help="agents per policy call")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    real_keep_last = adapter.keep_last
    with tempfile.TemporaryDirectory() as tmp:
        for channels, hidden in ((32, 128), (128, 512)):
            torch.manual_seed(0)
            network = Recurrent(Policy(cnn_channels=channels, hidden_size=hidden), hidden, hidden)
            path = Path(tmp) / f"metta-{channels}-{hidden}.pt"
            torch.save(network.state_dict(), path)
            policy = load_policy(f"pytorch://{path}")
            for suite in ("navigation", "laser_tag"):
                spec, obs = observations(suite, args.rows)
                figures = {}
                for label, keep_last in (("metta", real_keep_last), ("sum", lambda index, nowhere: index)):
                    adapter.keep_last = keep_last
                    figures[label] = min(time_act(policy, spec, obs, args.repeat) for _ in range(3))
                adapter.keep_last = real_keep_last
                print(
                    f"cnn {channels:3d} lstm {hidden:3d} {suite:10s} rows {len(obs)}: "
                    f"Metta's encoding {figures['metta']:6.2f} us/agent-step, "
                    f"plain sum {figures['sum']:6.2f}, "
                    f"ratio {figures['metta'] / figures['sum']:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
