"""The `policyeval` command.

    policyeval [run] --policy-path URI [--simulation-suite NAME|PATH] [--num-episodes N]
                     [--save-replays [DIR]] [--pytorch-config PATH] [--device DEVICE] [-- PYTEST ARGS]
    policyeval merge SHARD.json [SHARD.json ...] [--eval-json OUT] [--eval-yaml OUT]

`run` takes the flags Metta users know from `eval_external_policy.py` and runs pytest with this
plugin (in this process), so a run behaves exactly as the same `pytest` command would; the
command it runs is printed first. A suite NAME is looked up as ./suites/NAME.yaml, then in
$POLICYEVAL_SUITES_DIR.

`merge` combines the results of a split run (`pytest ... --shard-id I --num-shards N --eval-json ...` on
each machine) into the files one run would write, prints the same summary, and exits as pytest
would: 0 when every task passed, 1 when a task failed its gate or errored, 2 when the shards do
not make one complete run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SUITES_DIR_VAR = "POLICYEVAL_SUITES_DIR"


class SuiteNotFound(ValueError):
    pass


def find_suite(name: str, cwd: Path | None = None) -> Path:
    """A suite path, or a NAME looked up as ./suites/NAME.yaml, then $POLICYEVAL_SUITES_DIR/NAME.yaml."""
    cwd = cwd or Path.cwd()
    direct = cwd / name
    if direct.is_file():
        return direct
    folders = [cwd / "suites"] + (
        [Path(os.environ[SUITES_DIR_VAR])] if os.environ.get(SUITES_DIR_VAR) else []
    )
    for folder in folders:
        for candidate in (folder / f"{name}.yaml", folder / f"{name}.yml"):
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(folder / f"{name}.yaml") for folder in folders)
    raise SuiteNotFound(f"no simulation suite '{name}': not a file, and not found as {looked}")


def _readable(path: Path) -> str:
    """Relative to the working directory when below it (as pytest names tests), else absolute."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def pytest_args(args: argparse.Namespace) -> list[str]:
    """The pytest command line equivalent to `policyeval run` with these flags."""
    suites = [_readable(find_suite(name)) for name in args.simulation_suite]
    command = [*suites, "-p", "no:cacheprovider"]
    for uri in args.policy_path:
        command += ["--policy-uri", uri]
    options = {
        "--num-episodes": args.num_episodes,
        "--pytorch-config": args.pytorch_config,
        "--device": args.device,
        "--eval-json": args.eval_json,
        "--eval-yaml": args.eval_yaml,
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
    if args.workers:
        command += ["-n", args.workers]
    elif args.progress:
        command.append("--eval-progress")
    return command + list(args.pytest_args)


def _run(args: argparse.Namespace) -> int:
    import pytest

    try:
        command = pytest_args(args)
    except SuiteNotFound as exc:
        print(f"policyeval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("pytest " + shlex.join(command), flush=True)
    return int(pytest.main(command))


def _merge(args: argparse.Namespace) -> int:
    from pytest_policyeval.atomic import write_text_atomic
    from pytest_policyeval.merge import MergeError, merge_shards
    from pytest_policyeval.reporting.documents import dump_json, dump_yaml, evaluation_yaml, evaluator_json
    from pytest_policyeval.reporting.terminal import summary_lines

    try:
        merged = merge_shards(args.shards)
    except MergeError as exc:
        print(f"policyeval merge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in summary_lines(merged.results):
        print(line)
    if args.eval_json:
        write_text_atomic(args.eval_json, dump_json(evaluator_json(merged.results, merged.run)))
        print(f"results written to {args.eval_json}")
    if args.eval_yaml:
        write_text_atomic(args.eval_yaml, dump_yaml(evaluation_yaml(merged.results, merged.run)))
        print(f"results written to {args.eval_yaml}")
    failed = [r for r in merged.results if not r.ok]
    passed = len(merged.results) - len(failed)
    print(f"{passed} passed, {len(failed)} failed (merged from {len(args.shards)} shards)")
    return EXIT_FAILED if failed else EXIT_OK


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
        help="suite file or name (./suites/NAME.yaml); repeatable; default: navigation",
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
    run.add_argument("--device", metavar="DEVICE", help="cpu (default), cuda, cuda:N")
    run.add_argument("--eval-json", metavar="PATH", help="write the evaluator service's JSON")
    run.add_argument("--eval-yaml", metavar="PATH", help="write evaluation_results.yaml")
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
    merge.set_defaults(run=_merge)
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
