"""The per-process evaluation: one per pytest process (the controller's and every xdist worker's).

It holds the resolved options, loads each policy once per process and evaluates one task for one
policy at a time: the gate's rounds of episodes (rounds.py), played by the runner, judged by the
gate, with replays kept. What the results become afterwards is the controller's (controller.py);
how the process shares the machine is the worker's (worker.py).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_policyeval import signals
from pytest_policyeval.redact import redact_data, redact_text, redact_uri
from pytest_policyeval.worker import ProcessTuning

if TYPE_CHECKING:
    from pytest_policyeval.policies.base import Policy
    from pytest_policyeval.reporting.film import Film
    from pytest_policyeval.results import TaskResult
    from pytest_policyeval.task import Task


@dataclass(frozen=True)
class EvalOptions:
    policy_uris: tuple[str, ...] = ()
    num_episodes: int | None = None
    seed: int | None = None
    device: str = "cpu"
    gate: str | None = None
    json_path: Path | None = None
    yaml_path: Path | None = None
    npc_policy_uri: str | None = None  # overrides the suite's npc_policy_uri
    pytorch_config: Path | None = None  # overrides the suite's pytorch_config
    metta_preset: str | None = None  # overrides the suite's metta_preset
    replay_dir: Path | None = None  # --save-replays: write the recorded episodes here
    replay_episodes: int = 1  # episodes recorded per task when replays are wanted
    report_replays: bool = False  # an HTML report or W&B run wants films of the recorded episodes
    shard: tuple[int, int] | None = None  # (shard id, number of shards) of a split run
    data_dir: Path | None = None  # cache of downloaded policies (None: the default cache)
    output_uri: str | None = None  # --eval-output-uri: publish the results there
    wandb: bool = False  # --wandb: log the run to W&B from the controller
    progress: bool = False  # --eval-progress: a live line per task (serial runs)
    wandb_run_name: str | None = None
    baseline_uri: str | None = None  # --baseline-uri: gate on per-seed differences to this policy
    eval_cache: bool = True  # keep and reuse per-episode results (episode_cache.py)
    wandb_entity: str | None = None  # defaults for wandb://run/NAME (else the WANDB_* variables)
    wandb_project: str | None = None

    @property
    def recorded_episodes(self) -> int:
        return self.replay_episodes if (self.replay_dir is not None or self.report_replays) else 0


@dataclass(eq=False)
class Evaluation:
    options: EvalOptions
    tuning: ProcessTuning = field(default_factory=ProcessTuning)
    # Makes a live progress line (reporting.progress.ProgressLine) for a task: only where a
    # terminal shows it (a serial run with --eval-progress).
    progress: Callable[[str, int], Any] | None = None
    # Where a URI is loaded from: on a Ray worker, the node's copy of the caller's checkpoint.
    locate: Callable[[str], str] | None = None
    _policies: dict[Any, Any] = field(default_factory=dict)
    _episode_cache: Any = None

    def policy(self, uri: str, task: Task | None = None) -> Policy:
        """Load a policy once per process; a failed load fails every task of that policy alike."""
        from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy

        config = self.options.pytorch_config or (task.pytorch_config if task else None)
        preset = self.options.metta_preset or (task.metta_preset if task else None)
        key = (uri, config, preset)
        if key not in self._policies:
            try:
                options = LoadOptions(
                    pytorch_config=config,
                    metta_preset=preset,
                    data_dir=self.options.data_dir,
                    wandb_entity=self.options.wandb_entity,
                    wandb_project=self.options.wandb_project,
                    run_dir=self.tuning.shared_tmp() if self.tuning.shared_tmp else None,
                )
                self._policies[key] = load_policy(self.locate(uri) if self.locate else uri, options)
            except PolicyLoadError as exc:
                signals.stop_if_signalled()  # a Ctrl-C a loader's retry turned into an error
                self._policies[key] = exc
            self.tuning.after_load()
        loaded = self._policies[key]
        if isinstance(loaded, PolicyLoadError):
            raise loaded
        return loaded

    def npc_uri(self, task: Task) -> str | None:
        if task.settings.policy_agents_pct >= 1.0:
            return None
        return self.options.npc_policy_uri or task.settings.npc_policy_uri

    def resolve(self, task: Task) -> Task:
        """The task as it will run: command-line and ini overrides applied."""
        task = task.with_overrides(num_episodes=self.options.num_episodes, seed=self.options.seed)
        if self.options.num_episodes is not None:
            # Asked for N episodes: play exactly N; a sequential gate that cannot decide on them
            # says inconclusive rather than guess.
            task = task.with_settings(max_episodes=self.options.num_episodes)
        if self.options.gate is not None:
            task = task.with_settings(gate=self.options.gate)
        return task

    def new_result(self, task: Task, uri: str, label: str, order: tuple[int, int, int]) -> TaskResult:
        """The result of `task` for `uri` before it runs: what it is and how it will be gated."""
        from pytest_policyeval.results import TaskResult

        settings = task.settings
        baseline = self.baseline_uri(task)
        return TaskResult(
            suite=task.suite,
            task=task.name,
            policy_uri=redact_uri(uri),
            policy_label=label,
            order=order,
            threshold=settings.threshold,
            gated=settings.threshold is not None or baseline is not None,
            # Set before it runs, so a task that errors still reads as paired (its threshold is d's).
            baseline_uri=redact_uri(baseline) if baseline else None,
            higher_is_better=settings.higher_is_better,
            gate=settings.gate,
            num_episodes=settings.num_episodes,
            seed=task.seed,
            policy_agents_pct=settings.policy_agents_pct,
            npc_policy_uri=redact_uri(self.npc_uri(task) or "") or None,
            engine=task.engine,
        )

    def progress_line(self, task: Task, label: str) -> Any:
        """A live progress line for the task's rounds (--eval-progress, serial runs), else None."""
        if self.progress is None:
            return None
        return self.progress(f"{task.name} [{label}]", task.settings.max_steps)

    def evaluate(
        self,
        task: Task,
        uri: str,
        label: str,
        order: tuple[int, int, int],
        nodeid: str = "",
        cache: Any = None,
    ) -> tuple[TaskResult, list[Film]]:
        """Run one task for one policy: its result and, for the report, its recorded episodes.

        An error becomes a result with `error` set, never lost. `cache` replaces this process's
        episode cache (a Ray worker's relay to its caller's).
        """
        result = self.new_result(task, uri, label, order)
        npc_uri = self.npc_uri(task)
        cache = cache if cache is not None else self.episode_cache()
        result, films = self._evaluate(task, uri, npc_uri, label, nodeid, result, cache)
        return self.finished(result, task, uri), films

    def error_result(
        self, task: Task, uri: str, label: str, order: tuple[int, int, int], message: str
    ) -> TaskResult:
        """The result of a task that never ran here (lost on a Ray node, its files not shipped)."""
        result = self.new_result(task, uri, label, order)
        result.error = message
        return self.finished(result, task, uri)

    def finished(self, result: TaskResult, task: Task, uri: str) -> TaskResult:
        """A result as it leaves this process, whoever made it."""
        if result.error is not None and not result.episode_scores:
            result.num_episodes = 0  # none to rest on: not the episodes it was set to play
        # No password or signature of a URI goes with it.
        secret_bearing = [u for u in (uri, self.npc_uri(task), self.baseline_uri(task)) if u]
        result.policy = redact_data(result.policy, secret_bearing)
        result.error = redact_text(result.error, secret_bearing) if result.error else result.error
        result.traceback = (
            redact_text(result.traceback, secret_bearing) if result.traceback else result.traceback
        )
        return result

    def baseline_uri(self, task: Task) -> str | None:
        return self.options.baseline_uri or task.settings.baseline_uri

    @property
    def every_task_gated(self) -> bool:
        """One baseline for the whole run gates every task, ungated ones included."""
        return bool(self.options.baseline_uri)  # as baseline_uri() reads it

    def episode_cache(self) -> Any:
        if not self.options.eval_cache:
            return None
        if self._episode_cache is None:
            from pytest_policyeval.episode_cache import EpisodeCache
            from pytest_policyeval.policies.sources.cache import default_data_dir

            self._episode_cache = EpisodeCache(self.options.data_dir or default_data_dir())
        return self._episode_cache

    def _evaluate(
        self,
        task: Task,
        uri: str,
        npc_uri: str | None,
        label: str,
        nodeid: str,
        result: TaskResult,
        cache: Any,
    ) -> tuple[TaskResult, list[Film]]:
        import time

        from pytest_policyeval.gating import (
            check_cap,
            episode_check,
            episodes_hint,
            episodes_key,
            fill_result,
            gate_design,
        )
        from pytest_policyeval.policies import PolicyLoadError
        from pytest_policyeval.rounds import Episodes, gate_task
        from pytest_policyeval.runner import TaskTimeout

        baseline_uri = self.baseline_uri(task)
        try:
            policy = self.policy(uri, task)
            result.policy = policy.describe()
        except PolicyLoadError as exc:
            result.error = f"policy could not be loaded: {exc}"
            return result, []
        try:
            npc = self.policy(npc_uri, task) if npc_uri else None
        except PolicyLoadError as exc:
            result.error = f"npc policy could not be loaded: {exc}"
            return result, []
        try:
            baseline = self.policy(baseline_uri, task) if baseline_uri else None
        except PolicyLoadError as exc:
            result.error = f"baseline policy could not be loaded: {exc}"
            return result, []
        started = time.perf_counter()
        first_round: list[float] = []  # when the first round began: the start of max_time_s
        recorded = frozenset(range(self.options.recorded_episodes))

        failed_in: list[str] = []  # "the baseline" when its play raised: the error says whose it is

        def episodes(player: Policy, player_uri: str, fresh: frozenset[int], whose: str = "") -> Episodes:
            key, meta = episodes_key(task, player, npc, self.options.device)
            if cache is not None:  # so that a caller who never loads the policy finds them too
                cache.remember(episodes_hint(task, player_uri, npc_uri, self.options.device), key)
            play = self._player(task, player, npc, label, first_round)
            if whose:
                inner = play

                def play(indices: list[int]) -> Any:
                    try:
                        return inner(indices)
                    except TaskTimeout:  # the budget is both players': not the baseline's alone
                        raise
                    except Exception:  # its actor, or an npc or the engine in its episodes
                        failed_in.append(whose)
                        raise

            return Episodes(play, cache, key, meta, fresh, check=episode_check(task))

        try:
            design = gate_design(task, baseline is not None, self.every_task_gated)
            # --baseline-uri: the caps checked at load were for no baseline. (--num-episodes asks
            # for exactly N episodes: a cap too short for them says inconclusive, as without one.)
            if baseline is not None and self.options.num_episodes is None:
                check_cap(task, True, self.every_task_gated)
            with self.tuning.hard_limit(nodeid, task):
                run = gate_task(
                    design,
                    episodes(policy, uri, recorded),
                    task.settings.num_episodes,
                    episodes(baseline, baseline_uri, frozenset(), "the baseline")
                    if baseline is not None
                    else None,
                )
        except Exception as exc:
            signals.stop_if_signalled()  # a Ctrl-C some library turned into an error is still one
            result.error = f"{type(exc).__name__}: {exc}"
            if failed_in:
                result.error = (
                    f"while {failed_in[0]} ({redact_uri(baseline_uri or '')}) played: {result.error}"
                )
            result.traceback = traceback.format_exc(limit=8)
            return result, []
        self.tuning.freeze_heap_once()
        fill_result(result, task, run, baseline_uri, self.every_task_gated)
        result.wall_time_s = time.perf_counter() - started
        if math.isnan(result.score):
            result.error = "no agent-episodes were scored"
        elif aggregate := overflowed(result):
            largest = max((abs(s) for s in result.episode_scores), default=math.nan)
            result.error = (
                f"the task's {aggregate} overflows to infinity: episode scores as large as "
                f"{largest:.3g} cannot be averaged (scale the rewards)"
            )
        try:
            films = self._keep_replays(result, run.episodes, self.options.recorded_episodes)
        except Exception as exc:  # the score stands; the missing replay is the task's error
            result.error = f"replays could not be saved: {type(exc).__name__}: {exc}"
            films = []
        if result.error is not None:
            result.passed = None  # an errored task passed nothing, whatever its gate said
        return result, films

    def _player(self, task: Task, policy: Policy, npc: Policy | None, label: str, clock: list[float]) -> Any:
        """Plays episode indices of `task` in one batch (one round), with live progress if asked.

        `clock` holds when the task's first round began (set by the first call): max_time_s
        counts the task's rounds together, not the set-up before them.
        """
        from pytest_policyeval.runner import play_episodes

        def play(indices: list[int]) -> tuple[list[Any], float, int]:
            progress = self.progress_line(task, label)
            try:
                rollout = play_episodes(
                    task,
                    policy,
                    self.options.device,
                    npc=npc,
                    record=self.options.recorded_episodes,
                    progress=progress,
                    indices=indices,
                    started=clock[0] if clock else None,  # the first round starts the budget
                )
            finally:
                if progress is not None:
                    progress.close()
            if not clock:
                clock.append(rollout.started)
            return rollout.episodes, rollout.wall_time_s, rollout.agent_steps

        return play

    def _keep_replays(self, result: TaskResult, episodes: list[Any], recorded: int) -> list[Film]:
        """Save the recorded episodes as replay files and/or films for the HTML report."""
        from pytest_policyeval.atomic import write_bytes_atomic
        from pytest_policyeval.engines import engine_named
        from pytest_policyeval.reporting.replays import replay_path, replay_url

        engine = engine_named(result.engine)
        replay_file, film = getattr(engine, "replay_file", None), getattr(engine, "film", None)
        films = []
        for episode in episodes[:recorded]:
            if episode.replay is None:
                continue
            if self.options.replay_dir is not None and replay_file is not None:
                path = replay_path(
                    self.options.replay_dir, result.suite, result.policy_label, result.task, episode.index
                )
                write_bytes_atomic(path, replay_file(episode.replay))
                result.replay_urls.append(replay_url(path))
            if self.options.report_replays and film is not None:
                title = f"episode {episode.index} (seed {episode.seed}): score {episode.score:.4g}"
                films.append(film(episode.replay, title, episode.policy_agents))
        return films


def overflowed(result: TaskResult) -> str:
    """Which of the task's aggregates is infinite though every episode's score is finite (a sum
    of scores near the largest float), or ""."""
    for name, value in (
        ("score", result.score),
        ("estimate", result.estimate),
        ("interval", result.ci_low),
        ("interval", result.ci_high),
    ):
        if isinstance(value, float) and math.isinf(value):
            return name
    return ""
