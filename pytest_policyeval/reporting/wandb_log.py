"""`--wandb`: one W&B run per evaluation, opened by the controller once every result is in.

Logged: each task's score, the gate's estimate and interval (and a baseline's score) and each
policy's averages as summary metrics; a table of every task with its outcome and what its interval
and threshold are of (the score, or the per-seed difference to a baseline); each recorded episode
as an animated GIF. The run's config holds whether the run was complete. Works in W&B's offline mode
(WANDB_MODE=offline), which writes the run under ./wandb for a later `wandb sync`.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_policyeval.reporting.documents import by_policy, scored
from pytest_policyeval.results import TaskResult
from pytest_policyeval.scoring import averages, category_scores

COLUMNS = [
    "policy",
    "suite",
    "task",
    "score",
    "ci_low",
    "ci_high",
    "threshold",
    "passed",
    "episodes",
    "error",
    "outcome",
    "gated_on",  # what the interval and threshold are of: the score, or the difference to a baseline
    "estimate",
    "baseline_score",
]


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def metrics(results: Sequence[TaskResult]) -> dict[str, float | None]:
    """Flat metric names, per policy: `LABEL/TASK/score`, `LABEL/avg_simulation_score`, ..."""
    out: dict[str, float | None] = {}
    for group in by_policy(results).values():
        label = group[0].policy_label
        scores = scored(group)
        avg_sim, avg_cat = averages(scores)
        out[f"{label}/avg_simulation_score"] = _number(avg_sim)
        out[f"{label}/avg_category_score"] = _number(avg_cat)
        for category, score in category_scores(scores).items():
            out[f"{label}/{category}/score"] = _number(score)
        for r in group:
            out[f"{label}/{r.task}/score"] = _number(r.score)
            out[f"{label}/{r.task}/ci_low"] = _number(r.ci_low)
            out[f"{label}/{r.task}/ci_high"] = _number(r.ci_high)
            out[f"{label}/{r.task}/estimate"] = _number(r.estimate)
            if r.paired:
                out[f"{label}/{r.task}/baseline_score"] = _number(r.baseline_score)
    return out


def open_run(name: str | None, entity: str | None, project: str | None, config: dict[str, Any]) -> Any:
    import wandb

    return wandb.init(
        name=name,
        entity=entity,
        project=project or "policyeval",
        job_type="eval",
        config=config,
        reinit="create_new",
    )


def log_results(run: Any, results: Sequence[TaskResult], films: dict[str, list[dict[str, Any]]]) -> None:
    """Everything into `run`; `films` maps 'LABEL/TASK' to its recorded episodes."""
    import wandb

    values = metrics(results)
    run.log({key: value for key, value in values.items() if value is not None})
    run.summary.update(values)
    table = wandb.Table(columns=COLUMNS)
    for r in results:
        table.add_data(
            r.policy_label,
            r.suite,
            r.task,
            _number(r.score),
            _number(r.ci_low),
            _number(r.ci_high),
            r.design.get("threshold") if r.paired else r.threshold,
            r.passed,
            r.num_episodes,
            r.error,
            r.outcome,
            "difference to baseline" if r.paired else "score",
            _number(r.estimate),
            _number(r.baseline_score),
        )
    run.log({"tasks": table})
    if films:
        from pytest_policyeval.reporting.animation import film_gif

        with tempfile.TemporaryDirectory() as folder:
            videos = {}
            for key, episodes in films.items():
                for index, film in enumerate(episodes):
                    gif = film_gif(film, Path(folder) / f"{len(videos)}.gif")
                    videos[f"replays/{key}/{index}"] = wandb.Video(
                        str(gif), caption=film["title"], format="gif"
                    )
            run.log(videos)
