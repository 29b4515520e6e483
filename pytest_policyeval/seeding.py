"""Seeds that depend only on what is being evaluated, never on order, batch or process.

Episode seeds come from (suite seed, task name, episode index). Policies draw their randomness
from a counter-based hash of (slot seed, step, action), so a sampled action is the same whether
the episode runs alone, in a batch of 100, or on another xdist worker.
"""

from __future__ import annotations

import hashlib

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def episode_seed(suite_seed: int, task_name: str, episode: int) -> int:
    digest = hashlib.blake2b(f"{suite_seed}\0{task_name}\0{episode}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def slot_seeds(episode_seeds: list[int], agents_per_episode: int) -> np.ndarray:
    """One 64-bit seed per (episode, agent) row, rows ordered episode-major."""
    seeds = np.repeat(np.asarray(episode_seeds, dtype=np.uint64), agents_per_episode)
    agents = np.tile(np.arange(agents_per_episode, dtype=np.uint64), len(episode_seeds))
    return mix64(seeds * np.uint64(0x100000001B3) + agents)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrap-around is intended)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniforms(slot_seeds: np.ndarray, step: int, width: int) -> np.ndarray:
    """Uniform floats in (0, 1), shape (len(slot_seeds), width), a pure function of its inputs."""
    with np.errstate(over="ignore"):
        base = mix64(slot_seeds ^ mix64(np.uint64(step)))
        keys = base[:, None] + np.arange(1, width + 1, dtype=np.uint64)[None, :] * np.uint64(
            0xD1B54A32D192ED03
        )
    bits = mix64(keys) >> np.uint64(11)  # 53 random bits
    return (bits.astype(np.float64) + 0.5) / float(1 << 53)
