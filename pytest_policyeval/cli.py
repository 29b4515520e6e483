"""The `policyeval` command.

    policyeval [run] --policy-path URI [--simulation-suite NAME|PATH] [--num-episodes N]
                     [--save-replays [DIR]] [--pytorch-config PATH] [--metta-preset NAME]
                     [--device DEVICE] [-- PYTEST ARGS]
    policyeval merge SHARD.json [SHARD.json ...] [--eval-json OUT] [--eval-yaml OUT]

`run` takes the flags Metta users know from `eval_external_policy.py` and runs pytest with this
plugin (in this process), so a run behaves exactly as the same `pytest` command would; the
command it runs is printed first. A suite NAME is looked up as ./suites/NAME.yaml, then in
$POLICYEVAL_SUITES_DIR, then among the suites shipped with the package (navigation,
navigation_single, laser_tag, full_eval). As Metta's script did, the results go to
./eval_results/eval_POLICY_SUITE/evaluation_results.yaml unless --eval-yaml says otherwise
(POLICY: the policy's label, e.g. the checkpoint's file stem; several policies or suites are
joined with '+'); where the results and replays went is printed at the end.

`merge` combines the results of a split run (`pytest ... --shard-id I --num-shards N --eval-json ...` on
each machine) into the files one run would write, prints the same summary, and exits as pytest
would: 0 when every task passed, 1 when a task failed its gate or errored, 2 when the shards do
not make one complete run.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_policyeval.collection.lookup import (
    SUFFIXES,
    SUITES_DIR_VAR,
    SuiteNotFound,
    find_suite,
    suite_args,
)

__all__ = ["SUITES_DIR_VAR", "SuiteNotFound", "find_suite", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RESULTS_DIR = Path("eval_results")


def _file_part(text: str) -> str:
    return re.sub(r"[^\w.+-]", "_", text)


def default_results_path(policy_uris: Sequence[str], suites: Sequence[str]) -> Path:
    """eval_results/eval_POLICY_SUITE/evaluation_results.yaml, as Metta's script wrote it.

    POLICY is the policy's label (a checkpoint's file stem) and SUITE the suite's name; several of
    either are joined with '+' in the order given, so each combination keeps its own folder.
    """
    from pytest_policyeval.policies.naming import policy_label

    labels = dict.fromkeys(policy_label(uri) for uri in policy_uris)
    names = dict.fromkeys(Path(s).stem if Path(s).suffix in SUFFIXES else Path(s).name for s in suites)
    folder = f"eval_{_file_part('+'.join(labels))}_{_file_part('+'.join(names))}"
    return RESULTS_DIR / folder / "evaluation_results.yaml"


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line equivalent to `policyeval run` with these flags."""
    command = [arg for name in args.simulation_suite for arg in suite_args(name)]
    command += ["-p", "no:cacheprovider"]
    for uri in args.policy_path:
        command += ["--policy-uri", uri]
    options = {
        "--num-episodes": args.num_episodes,
        "--pytorch-config": args.pytorch_config,
        "--metta-preset": args.metta_preset,
        "--baseline-uri": args.baseline,
        "--eval-gate": args.gate,
        "--device": args.device,
        "--eval-json": args.eval_json,
        "--eval-yaml": args.eval_yaml or default_results_path(args.policy_path, args.simulation_suite),
        "--eval-output-uri": args.output_uri,
        "--data-dir": args.data_dir,
        "--html": args.html,
        "--wandb-run-name": args.run_name,
    }
    for flag, value in options.items():
        if value is not None:
            command += [flag, str(value)]
    if args.save_replays is not None:
        command.append(f"--save-replays={args.save_replays}")
    if args.html:
        command.append("--self-contained-html")
    if args.wandb:
        command.append("--wandb")
    if not args.eval_cache:
        command.append("--no-eval-cache")
    if args.workers:
        command += ["-n", args.workers]
    elif args.progress:
        command.append("--eval-progress")
    return command + list(args.pytest_args)


def _run(args: argparse.Namespace) -> int:
    import pytest

    from pytest_policyeval.service import RunOutcome

    try:
        command = pytest_args(args)
    except SuiteNotFound as exc:
        print(f"policyeval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("pytest " + shlex.join(command), flush=True)
    outcome = RunOutcome()
    code = int(pytest.main(command, plugins=[outcome]))
    _print_locations(outcome.controller)
    return code


def _print_locations(controller: Any) -> None:
    """Where this run's files went, as the last lines (pytest's own output is long)."""
    if controller is None:
        return
    for path in controller.written:
        print(f"policyeval: results written to {path}")
    if any(result.replay_urls for result in controller.results):
        print(f"policyeval: replays written under {controller.options.replay_dir}")


def _merge(args: argparse.Namespace) -> int:
    from pytest_policyeval.atomic import write_text_atomic
    from pytest_policyeval.completeness import describe
    from pytest_policyeval.merge import MergeError, merge_shards
    from pytest_policyeval.reporting.documents import dump_json, dump_yaml, evaluation_yaml, evaluator_json
    from pytest_policyeval.reporting.terminal import summary_lines

    try:
        merged = merge_shards(args.shards, allow_partial=args.allow_partial)
    except MergeError as exc:
        print(f"policyeval merge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in summary_lines(merged.results, merged.run):
        print(line)
    if args.eval_json:
        write_text_atomic(args.eval_json, dump_json(evaluator_json(merged.results, merged.run)))
        print(f"results written to {args.eval_json}")
    if args.eval_yaml:
        write_text_atomic(args.eval_yaml, dump_yaml(evaluation_yaml(merged.results, merged.run)))
        print(f"results written to {args.eval_yaml}")
    failed = [r for r in merged.results if not r.ok]
    skipped = sum(1 for r in merged.results if r.ok and not r.claims_pass)  # inconclusive: skip
    passed = len(merged.results) - len(failed) - skipped
    incomplete = describe(merged.run)
    if incomplete:
        print(incomplete)
    counts = f"{passed} passed, {len(failed)} failed" + (f", {skipped} skipped" if skipped else "")
    print(f"{counts} (merged from {len(args.shards)} shards)")
    return EXIT_FAILED if failed or incomplete else EXIT_OK


def add_run_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--policy-path",
        action="append",
        required=True,
        metavar="URI",
        help="policy to evaluate (repeatable): a path, file://, pytorch://, http(s)://, s3://, wandb://",
    )
    run.add_argument(
        "--simulation-suite",
        action="append",
        default=None,
        metavar="NAME|PATH",
        help="suite file or name (./suites/NAME.yaml, $POLICYEVAL_SUITES_DIR, then the shipped suites); "
        "repeatable; default: navigation",
    )
    run.add_argument("--num-episodes", type=int, metavar="N", help="episodes per task (default: the suite's)")
    run.add_argument(
        "--save-replays",
        nargs="?",
        const="replays",
        default=None,
        metavar="DIR",
        help="write replay files under DIR (default: replays)",
    )
    run.add_argument("--pytorch-config", metavar="PATH", help="architecture config of pytorch:// checkpoints")
    run.add_argument(
        "--metta-preset", metavar="NAME", help="Metta engine version of the checkpoint (default: june-2025)"
    )
    run.add_argument("--device", metavar="DEVICE", help="cpu (default), cuda, cuda:N")
    run.add_argument(
        "--baseline",
        metavar="URI",
        help="gate on per-seed differences to this policy (e.g. the current best checkpoint)",
    )
    run.add_argument(
        "--gate",
        metavar="GATE",
        help="sequential (default: stated error rates), ci, mean (Metta's rule, no guarantee), or a "
        "gate a plugin registers",
    )
    run.add_argument(
        "--no-eval-cache", dest="eval_cache", action="store_false", help="play every episode again"
    )
    run.add_argument("--eval-json", metavar="PATH", help="write the evaluator service's JSON")
    run.add_argument(
        "--eval-yaml",
        metavar="PATH",
        help="write evaluation_results.yaml here (default: eval_results/eval_POLICY_SUITE/)",
    )
    run.add_argument("--output-uri", metavar="URI", help="publish results to a folder, s3:// or wandb://")
    run.add_argument("--data-dir", metavar="DIR", help="cache of downloaded policies")
    run.add_argument("--html", metavar="PATH", help="write the HTML report (self-contained)")
    run.add_argument("--wandb", action="store_true", help="log the run to W&B")
    run.add_argument("--run-name", metavar="NAME", help="name of the W&B run")
    run.add_argument("-n", "--workers", metavar="N", help="evaluate in N processes (pytest-xdist; 'auto')")
    run.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no live progress line per task"
    )
    run.add_argument("pytest_args", nargs="*", metavar="-- PYTEST ARGS", help="passed to pytest as they are")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="policyeval", description="pytest-policyeval's command line")
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="evaluate policies on simulation suites (the flags of Metta's eval_external_policy.py)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(run)
    run.set_defaults(run=_run)
    merge = commands.add_parser(
        "merge",
        help="combine the results JSON of every shard of a split run into one result",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument(
        "shards", nargs="+", type=Path, metavar="SHARD.json", help="each shard's --eval-json file"
    )
    merge.add_argument("--eval-json", type=Path, help="write the merged results (evaluator service's JSON)")
    merge.add_argument("--eval-yaml", type=Path, help="write the merged evaluation_results.yaml")
    merge.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge interrupted or incomplete shards too; the result then says it is partial (exit 1)",
    )
    merge.set_defaults(run=_merge)
    from pytest_policyeval.serve.commands import add_commands

    add_commands(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("--") and argv[0] not in ("--help",):
        argv.insert(0, "run")  # `policyeval --policy-path ...`, as Metta's script was called
    args = parser().parse_args(argv)
    if args.command == "run" and args.simulation_suite is None:
        args.simulation_suite = ["navigation"]
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
