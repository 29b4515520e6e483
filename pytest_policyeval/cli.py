"""The `policyeval` command.

    policyeval merge SHARD.json [SHARD.json ...] [--eval-json OUT] [--eval-yaml OUT]

combines the results of a split run (`pytest ... --shard-id I --num-shards N --eval-json ...` on
each machine) into the files one run would write, prints the same summary, and exits as pytest
would: 0 when every task passed, 1 when a task failed its gate or errored, 2 when the shards do
not make one complete run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="policyeval", description="pytest-policyeval's command line")
    commands = top.add_subparsers(dest="command", required=True)
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
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
