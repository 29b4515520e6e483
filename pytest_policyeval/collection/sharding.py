"""Splitting a run across machines with no coordination: `--shard-id I --num-shards N`.

Every shard collects the same items and computes the same assignment, so each task lands on
exactly one shard. A task (all its policies) is one unit; units are placed longest first on the
least-loaded shard (ties by task id), by an estimate of their cost: episodes x steps x agents x
policies. Items that are not suite tasks (plain Python tests) run on shard 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: need 0 <= shard id < number of shards")


def assign(costs: Mapping[str, float], count: int) -> dict[str, int]:
    """Task id -> shard index, balancing the estimated cost (longest-processing-time first)."""
    loads = [0.0] * count
    placement: dict[str, int] = {}
    for task_id in sorted(costs, key=lambda key: (-costs[key], key)):
        shard = min(range(count), key=lambda i: (loads[i], i))
        placement[task_id] = shard
        loads[shard] += costs[task_id]
    return placement


def select(task_ids: Sequence[str | None], costs: Mapping[str, float], shard: Shard) -> list[bool]:
    """For each item (its task id, or None for other tests): does it run on `shard`?"""
    placement = assign(costs, shard.count)
    return [placement[task_id] == shard.index if task_id else shard.index == 0 for task_id in task_ids]
