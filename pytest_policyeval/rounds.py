"""One task's gate, played out: rounds of episodes until the gate decides.

A fixed gate (`mean`, `ci`) plays its num_episodes in one round. A sequential gate plays
num_episodes first, then rounds half as large as what it has (so batches stay large and few
rounds are wasted), and asks the gate after each; the gate itself decides episode by episode, so
where the rounds fall changes nothing but the episodes played past the decision (kept in the
cache, unused). With a baseline, both policies play the same episode indices (the same seeds)
and the gate is on the per-seed differences.

Episodes come from the cache where it has them (episode_cache.py), so an unchanged policy and
task is never played twice and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_policyeval.episode_cache import CachedEpisode, EpisodeCache
from pytest_policyeval.gates.decide import gate_for, judge
from pytest_policyeval.gates.design import GateDesign, differences, first_outside, paired, range_error
from pytest_policyeval.gates.sequential import Decision


class CacheMismatch(RuntimeError):
    """An episode played again differs from the kept one: the cache cannot be trusted here."""


@dataclass
class Episode:
    index: int
    seed: int
    rewards: list[float]
    steps: int
    policy_agents: list[int]
    cached: bool
    replay: dict | None = None

    @property
    def score(self) -> float:
        return float(np.mean(self.rewards)) if self.rewards else float("nan")


# Plays these episode indices in one batch: (episodes, wall seconds, agent-steps).
Play = Callable[[list[int]], tuple[list[Any], float, int]]


@dataclass
class Episodes:
    """One policy's episodes of one task, by index: from the cache where it has them, else played.

    Indices in `fresh` are always played (their replays are wanted). The engine is deterministic,
    so they must give what the cache holds: a difference means the key misses something that
    changes episodes, and `take` raises CacheMismatch rather than decide on either. A kept episode
    is used only if `check` accepts it (its seed, its agents, its steps and its score are what
    this task can produce).
    """

    play: Play
    cache: EpisodeCache | None = None
    key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    fresh: frozenset[int] = frozenset()
    check: Callable[[Episode], bool] | None = None  # a kept episode that fails it is played again
    wall_time_s: float = 0.0
    agent_steps: int = 0
    _known: dict[int, Episode] = field(default_factory=dict)
    _kept_fresh: dict[int, Episode] = field(default_factory=dict)  # to compare with their replay
    _loaded: bool = False

    def take(self, indices: list[int]) -> list[Episode]:
        if not self._loaded and self.cache is not None and self.key is not None:
            for index, e in self.cache.load(self.key).items():
                kept = Episode(e.index, e.seed, e.rewards, e.steps, e.policy_agents, True)
                if self.check is not None and not self.check(kept):
                    continue
                if index in self.fresh:
                    self._kept_fresh[index] = kept
                else:
                    self._known[index] = kept
            self._loaded = True
        missing = [i for i in indices if i not in self._known]
        if missing:
            played, wall, steps = self.play(missing)
            self.wall_time_s += wall
            self.agent_steps += steps
            for e in played:
                self._known[e.index] = Episode(
                    e.index, e.seed, list(e.rewards), e.steps, list(e.policy_agents), False, e.replay
                )
                kept = self._kept_fresh.get(e.index)
                if kept is not None and (kept.rewards, kept.steps) != (list(e.rewards), e.steps):
                    raise CacheMismatch(
                        f"episode {e.index} (seed {e.seed}) played again for its replay scored "
                        f"{self._known[e.index].score:g} in {e.steps} steps, but the kept one scored "
                        f"{kept.score:g} in {kept.steps}: something that changes episodes is missing "
                        "from the episode cache's key, or the engine is not deterministic here; "
                        "rerun with --no-eval-cache"
                    )
            if self.cache is not None and self.key is not None:
                self.cache.store(
                    self.key,
                    [
                        CachedEpisode(e.index, e.seed, list(e.rewards), e.steps, list(e.policy_agents))
                        for e in played
                        if np.all(np.isfinite(e.rewards))  # JSON has no NaN; it is played again
                    ],
                    self.meta,
                )
        return [self._known[i] for i in indices]


@dataclass
class GatePlay:
    decision: Decision
    design: GateDesign  # the design the decision was made with (the paired one with a baseline)
    episodes: list[Episode]  # the candidate's episodes the decision rests on
    baseline: list[Episode] | None
    episodes_run: int  # episodes obtained (played or from the cache), the unused ones included
    agent_steps: int = 0  # agent-steps played (kept episodes cost none)


def next_round(done: int, first: int, cap: int) -> int:
    size = first if done == 0 else max(first, done // 2)
    return max(0, min(size, cap - done))


def scores_for(design: GateDesign, episodes: list[Episode], baseline: list[Episode] | None) -> list[float]:
    """What the gate sees: scores, or with a baseline the per-seed differences (better > 0)."""
    scores = [e.score for e in episodes]
    if baseline is None:
        return scores
    return differences(scores, [b.score for b in baseline], design.higher_is_better)


def judge_pair(
    design: GateDesign, gate: GateDesign, episodes: list[Episode], base: list[Episode]
) -> Decision:
    """The paired gate's decision, with the candidate's and the baseline's own scores held to the
    task's declared range as an unpaired gate holds them (their differences alone could hide a
    wrong range). As there, a score outside it is an error unless the gate decided before it."""
    outside = [
        (index, order, whose, played[index].score)
        for order, (whose, played) in enumerate((("the candidate's ", episodes), ("the baseline's ", base)))
        if (index := first_outside(design, [e.score for e in played])) is not None
    ]
    if not outside:
        return judge(gate, scores_for(design, episodes, base))
    index, _, whose, score = min(outside)
    if index > 0 and gate_for(gate.kind).sequential:
        head = judge(gate, scores_for(design, episodes[:index], base[:index]))
        if head.outcome is not None:
            return head
    raise range_error(design, index, score, whose)


def gate_task(
    design: GateDesign,
    candidate: Episodes,
    first_round: int,
    baseline: Episodes | None = None,
    trace: bool = True,
) -> GatePlay:
    gate = paired(design) if baseline is not None else design
    fixed = gate.threshold is None or not gate_for(gate.kind).sequential
    cap = first_round if fixed else max(first_round, design.max_episodes)
    episodes: list[Episode] = []
    base: list[Episode] | None = [] if baseline is not None else None
    while True:
        size = next_round(len(episodes), first_round, cap)
        indices = list(range(len(episodes), len(episodes) + size))
        episodes += candidate.take(indices)
        if base is not None and baseline is not None:
            base += baseline.take(indices)
        if base is not None:
            decision = judge_pair(design, gate, episodes, base)
        else:
            decision = judge(gate, scores_for(design, episodes, base))
        if fixed or decision.outcome is not None or len(episodes) >= cap or size == 0:
            break
    used = decision.episodes
    if trace and not fixed:
        decision = judge(gate, scores_for(design, episodes[:used], base[:used] if base else None), trace=True)
    return GatePlay(
        decision,
        gate,
        episodes[:used],
        base[:used] if base is not None else None,
        len(episodes),
        candidate.agent_steps + (baseline.agent_steps if baseline is not None else 0),
    )
