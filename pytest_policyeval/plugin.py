"""The pytest plugin (`pytest11` entry point `policyeval`).

This module is imported by every pytest run in a repository where the package is installed, so
it imports nothing heavy: suites, policies, torch and the engine are imported inside hooks, when
a suite is actually collected or run.

Flow: options (options.py; `--eval-suite NAME` adds that suite's file to the paths to collect)
-> an `Evaluation` per process in `config.stash` (evaluation.py) -> suite YAML files collected
as `SuiteFile`s (collection/) -> each item evaluates one task for one policy -> its result rides
on the test report (so it reaches the xdist controller) -> the `Controller` (controller.py, on
the controller only) writes the summary and result files and publishes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_policyeval.evaluation import Evaluation
from pytest_policyeval.keys import (
    CONTROLLER_KEY,
    EVALUATION_KEY,
    FILMS_KEY,
    RESULT_KEY,
    controller_of,
    evaluation_of,
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Our hooks (hookspec.py) with the built-in behaviour as their implementations; conftest files
    and plugins add theirs to the same manager, which every lookup (registry.py) goes through."""
    from pytest_policyeval import registry
    from pytest_policyeval.provenance import forget_sources

    registry.add_to(pluginmanager)
    forget_sources()  # each run reads its own code afresh


def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_policyeval.options import add_options

    add_options(parser)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    # A conftest's or local plugin's code decides episodes: its digest is of the source as imported, now.
    if isinstance(getattr(plugin, "__file__", None), str):
        from pytest_policyeval.provenance import remember_plugin

        remember_plugin(plugin)


def pytest_configure(config: pytest.Config) -> None:
    from pytest_policyeval import registry
    from pytest_policyeval.collection.items import COLLECTING_KEY, Collecting
    from pytest_policyeval.options import options_from, ray_settings, writes_html_report
    from pytest_policyeval.worker import ProcessTuning

    # mettagrid depends on importnb, whose pytest plugin collects every file named on the command
    # line as a notebook, suite YAML included, and fails on it. Nobody evaluating policies asked for it.
    if config.pluginmanager.has_plugin("importnb"):
        config.pluginmanager.set_blocked("importnb")

    # Lookups go through this run's manager (conftests included) until it ends; an enclosing run
    # (pytester) gets its own back then, even if this one fails to configure further.
    previous = registry.use(config.pluginmanager)
    config.add_cleanup(lambda: registry.use(previous))
    base = Path(config.invocation_params.dir)
    _add_named_suites(config, base)
    options = options_from(config)
    worker = getattr(config, "workerinput", None)
    shared_tmp = lambda: _shared_tmp(config)  # noqa: E731 (pytest's temp dir exists only later)
    tuning = ProcessTuning(
        is_worker=worker is not None,
        worker_count=int((worker or {}).get("workercount", 1)),
        worker_index=int((worker or {}).get("workerid", "gw0").removeprefix("gw") or 0),
        shared_tmp=shared_tmp,
    )
    config.stash[EVALUATION_KEY] = Evaluation(
        options, tuning, progress=_progress_line(config) if worker is None else None
    )
    # Files named on the command line are suites wherever they live.
    config.stash[COLLECTING_KEY] = Collecting(
        explicit_paths=frozenset((base / arg.split("::", 1)[0]).resolve() for arg in config.args),
    )
    html = writes_html_report(config)
    if html:
        from pytest_policyeval.html_plugin import HtmlExtras

        config.pluginmanager.register(HtmlExtras(), "policyeval-html-extras")
    if worker is not None:
        return
    from pytest_policyeval import signals
    from pytest_policyeval.controller import Controller

    # A CI timeout's SIGTERM writes what ran, marked interrupted.
    config.add_cleanup(signals.interrupt_on_sigterm())

    # Gathering results, writing files, publishing and the summary: the controller's hooks.
    controller = Controller(options, config.rootpath, hang_verdict=_hang_verdict(tuning))
    config.stash[CONTROLLER_KEY] = controller
    config.pluginmanager.register(controller, "policyeval-controller")
    ray = ray_settings(config)
    if ray is not None:
        from pytest_policyeval.ray_backend.scheduler import RayScheduler

        # Items are evaluated on a Ray cluster and reported here as they finish (ray_backend/).
        config.pluginmanager.register(RayScheduler(ray), "policyeval-ray")
    if html:
        from pytest_policyeval.html_plugin import HtmlReport

        config.pluginmanager.register(HtmlReport(controller, options, config.rootpath), "policyeval-html")


def _progress_line(config: pytest.Config) -> Any:
    """--eval-progress: a live line per task on this terminal (serial runs)."""
    if not config.getoption("policyeval_progress"):
        return None
    from pytest_policyeval.reporting.progress import ProgressLine

    return lambda title, max_steps: ProgressLine(config, title, max_steps)


def _hang_verdict(tuning: Any) -> Any:
    """Why a worker's task ended its process, read from the watch its workers share (watchdog.py)."""

    def verdict(nodeid: str) -> Any:
        watch = tuning.hang_watch()
        return watch.verdict(nodeid) if watch is not None else None

    return verdict


def _named_suites(config: pytest.Config, base: Path) -> list[Path]:
    """--eval-suite names (from the invocation folder), else the ini's (from the ini file's folder)."""
    from pytest_policyeval.collection.lookup import SuiteNotFound, find_suite

    names, folder = config.getoption("policyeval_suites"), base
    if not names:
        names = config.getini("policyeval_suites")
        folder = config.inipath.parent if config.inipath else config.rootpath
    try:
        return [find_suite(name, folder).resolve() for name in names]
    except SuiteNotFound as exc:
        raise pytest.UsageError(str(exc)) from None


def _add_named_suites(config: pytest.Config, base: Path) -> None:
    """Collect the named suites, wherever their files are (the package's own suites included)."""
    paths = _named_suites(config, base)
    if not paths:
        return
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = []  # the named suites are the run, not testpaths or the whole current folder
    given = {(base / arg.split("::", 1)[0]).resolve() for arg in config.args}
    # A suite both named and given as a path, or named twice, still runs once.
    config.args += [str(path) for path in dict.fromkeys(paths) if path not in given]


def _shared_tmp(config: pytest.Config) -> Path:
    """pytest's base temp dir of this run; xdist workers each get a child of the shared one."""
    basetemp = config._tmp_path_factory.getbasetemp()  # the tmp_path_factory fixture's factory
    return basetemp.parent if hasattr(config, "workerinput") else basetemp


# -- collection ---------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from pytest_policyeval.collection.items import COLLECTING_KEY, SuiteFile, is_suite_path, suite_nodeid

    config = parent.config
    collecting = config.stash[COLLECTING_KEY]
    patterns = config.getini("policyeval_suite_patterns")
    if not is_suite_path(file_path, collecting.explicit_paths, patterns, config.rootpath):
        return None
    suite_file = SuiteFile.from_parent(
        parent, path=file_path, nodeid=suite_nodeid(file_path, config.rootpath)
    )
    suite_file.suite_index = collecting.suite_index(file_path)
    return suite_file


@pytest.hookimpl(trylast=True)  # after -k and -m: shards split what is left, not what they drop
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    from pytest_policyeval.collection.items import COLLECTING_KEY

    unplayable = config.stash[COLLECTING_KEY].suites_without_policy
    if unplayable:
        # Raised here, not in collect(), so pytest reports a usage error (exit 4), not a crash.
        raise pytest.UsageError(
            f"{unplayable[0]} is a policy evaluation suite; say which policy to evaluate with "
            "--policy-uri URI (e.g. --policy-uri random:// or --policy-uri file://policy.pt)"
        )
    shard = evaluation_of(config).options.shard
    if shard is not None:
        _keep_shard(config, items, *shard)
    if hasattr(config, "workerinput"):
        _longest_first(items)


def _longest_first(items: list) -> None:
    """Under xdist, hand out the longest tasks first so that no worker is left with one at the end.

    Every worker sorts the same way (cost, then node id), so xdist sees identical collections.
    Only the order of running changes: results and files keep the suites' order.
    """
    from pytest_policyeval.collection.items import TaskItem

    def key(item: pytest.Item) -> tuple[float, str]:
        return (-item.cost() if isinstance(item, TaskItem) else 0.0, item.nodeid)

    items.sort(key=key)


def _keep_shard(config: pytest.Config, items: list, shard_id: int, num_shards: int) -> None:
    from pytest_policyeval.collection.items import TaskItem
    from pytest_policyeval.collection.sharding import Shard, select

    task_ids = [item.task_id if isinstance(item, TaskItem) else None for item in items]
    costs: dict[str, float] = {}
    for item, task_id in zip(items, task_ids, strict=True):
        if task_id is not None:
            costs[task_id] = costs.get(task_id, 0.0) + item.cost()
    keep = select(task_ids, costs, Shard(shard_id, num_shards))
    _record_split(config, [item.nodeid for item in items if isinstance(item, TaskItem)])
    dropped = [item for item, kept in zip(items, keep, strict=True) if not kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item, kept in zip(items, keep, strict=True) if kept]


def _record_split(config: pytest.Config, task_ids: list[str]) -> None:
    """What this shard's split was cut from (every task item left after -k, suites and policies
    alike), so that `policyeval merge` can refuse shards cut from different selections. Under
    xdist it rides back to the controller with the worker's output."""
    import hashlib

    split = {
        "tasks": len(task_ids),
        "digest": hashlib.sha256("\n".join(sorted(task_ids)).encode()).hexdigest()[:16],
    }
    if hasattr(config, "workeroutput"):
        config.workeroutput["policyeval_split"] = split
    controller = controller_of(config)
    if controller is not None:
        controller.split = split


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def policyeval(pytestconfig: pytest.Config) -> Evaluation:
    """This process's evaluation: options, the policy cache, `evaluate(task, uri, ...)`."""
    return evaluation_of(pytestconfig)


@pytest.fixture
def eval_policy(policyeval: Evaluation, eval_policy_uri: str) -> Any:
    """The loaded policy for each --policy-uri (tests asking for it run once per policy)."""
    return policyeval.policy(eval_policy_uri)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "eval_policy_uri" in metafunc.fixturenames:
        from pytest_policyeval.collection.items import unique_labels

        uris = list(evaluation_of(metafunc.config).options.policy_uris)
        metafunc.parametrize("eval_policy_uri", uris, ids=unique_labels(uris))


# -- results: worker -> report -> controller ----------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "setup":
        from pytest_policyeval.collection.items import TaskItem

        if isinstance(item, TaskItem):
            # What the task is, from collection: the controller's error result if its worker dies.
            report.policyeval_planned = item.planned_result().to_dict()
    if call.when == "call":
        data = item.stash.get(RESULT_KEY, None)
        if data is not None:
            # A plain attribute of JSON types: xdist serialises it to the controller.
            report.policyeval = data
            films = item.stash.get(FILMS_KEY, None)
            if films and evaluation_of(item.config).options.wandb:
                report.policyeval_films = [film.encode() for film in films]  # for W&B's animations
    return report
