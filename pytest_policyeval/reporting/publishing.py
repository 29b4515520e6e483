"""Publishing a finished run: what the `pytest_policyeval_publish` hook implementations share.

The controller calls the hook once, after the local files are written. The built-in
implementations (reporting/hooks.py) log to W&B (--wandb; it runs first, so the output URI's
W&B artifact joins the same run) and upload to the output URI (--eval-output-uri). A failure is
reported and fails the run; the local files are already written either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PublishError(Exception):
    """Results that could not be published: the message names the destination and the cause."""


@dataclass(eq=False)
class Publishing:
    run: dict[str, Any]  # the run's facts (completeness, device, versions): the documents' header
    films: dict[str, list[dict[str, Any]]]  # "LABEL/TASK" -> recorded episodes, for W&B
    replay_dir: Path | None = None  # where --save-replays wrote the replay files
    output_uri: str | None = None  # --eval-output-uri / OUTPUT_URI
    wandb: bool = False  # --wandb
    wandb_run_name: str | None = None
    wandb_entity: str | None = None
    wandb_project: str | None = None
    # Filled in by the implementations, read by the terminal summary.
    wandb_run: Any = None  # the open W&B run, for later implementations to log into
    wandb_url: str | None = None
    published: list[str] = field(default_factory=list)  # URLs written, the results JSON's first
    errors: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None
