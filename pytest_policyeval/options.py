"""The plugin's command-line and ini options, and the `EvalOptions` they resolve to.

Every option's dest is also its ini key; values are checked as they are parsed (option_values.py),
so a bad one is a usage error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_policyeval.evaluation import EvalOptions

if TYPE_CHECKING:
    from pytest_policyeval.ray_backend.settings import RaySettings
from pytest_policyeval.option_values import (
    INI_KEYS,
    LINE_LISTS,
    device_name,
    empty_uri_override,
    episode_count,
    existing_file,
    gate_kind,
    metta_preset,
    non_negative_float,
    non_negative_int,
    output_file,
    positive_int,
    ray_address,
    ray_resources,
    replay_dir,
    retry_count,
    uri,
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("policyeval", "policy evaluation (pytest-policyeval)")
    group.addoption(
        "--policy-uri",
        action="append",
        type=uri,
        default=[],
        dest="policyeval_policy_uris",
        metavar="URI",
        help="policy to evaluate (repeatable): random://, scripted://NAME, file://PATH or a path (any "
        "checkpoint format, told by its content), pytorch://PATH (a Metta state dict), sb3://PATH.zip "
        "(a Stable-Baselines3 model), http(s)://URL, s3://, wandb://, or a scheme a plugin registers",
    )
    group.addoption(
        "--eval-suite",
        action="append",
        default=[],
        dest="policyeval_suites",
        metavar="NAME|PATH",
        help="run a suite by name (repeatable): ./suites/NAME.yaml, $POLICYEVAL_SUITES_DIR, else a suite "
        "shipped with the package (navigation, navigation_single, laser_tag, full_eval); replaces the "
        "default paths (testpaths, the current folder), adds to paths given (ini: policyeval_suites)",
    )
    group.addoption(
        "--data-dir",
        default=None,
        dest="policyeval_data_dir",
        metavar="DIR",
        help="cache of downloaded policies, reused by later and offline runs (default: "
        "$POLICYEVAL_DATA_DIR, else the user cache dir; ini: policyeval_data_dir)",
    )
    group.addoption(
        "--num-episodes",
        type=episode_count,
        default=None,
        dest="policyeval_num_episodes",
        metavar="N",
        help="episodes per task, overriding the suite (ini: policyeval_num_episodes)",
    )
    group.addoption(
        "--eval-seed",
        type=non_negative_int,
        default=None,
        dest="policyeval_seed",
        metavar="SEED",
        help="base seed of every episode, overriding the suite (ini: policyeval_seed)",
    )
    group.addoption(
        "--device",
        type=device_name,
        default=None,
        dest="policyeval_device",
        metavar="DEVICE",
        help="torch device for policies: cpu (default), cuda, cuda:N (ini: policyeval_device)",
    )
    group.addoption(
        "--eval-gate",
        default=None,
        metavar="GATE",
        dest="policyeval_gate",
        help="how thresholds gate: sequential (default: episodes in rounds until an anytime-valid test "
        "decides, with stated error rates), ci (fixed episodes, a one-sided bound) or mean (Metta's rule, "
        "no error guarantee), or a gate a plugin registers (ini: policyeval_gate)",
    )
    group.addoption(
        "--baseline-uri",
        type=uri,
        default=None,
        dest="policyeval_baseline_uri",
        metavar="URI",
        help="gate each task on per-seed differences to this policy, which plays the same seeds: "
        "pass when not worse than it by more than the margin (ini: policyeval_baseline_uri)",
    )
    group.addoption(
        "--no-eval-cache",
        action="store_true",
        default=False,
        dest="policyeval_no_cache",
        help="play every episode again instead of reusing per-episode results kept in the data dir",
    )
    group.addoption(
        "--eval-json",
        type=output_file,
        default=None,
        dest="policyeval_json",
        metavar="PATH",
        help="write results in the evaluator service's JSON shape",
    )
    group.addoption(
        "--eval-yaml",
        type=output_file,
        default=None,
        dest="policyeval_yaml",
        metavar="PATH",
        help="write Metta's evaluation_results.yaml",
    )
    group.addoption(
        "--npc-policy-uri",
        type=uri,
        default=None,
        dest="policyeval_npc_policy_uri",
        metavar="URI",
        help="policy for the agents that the policy under test does not play (tasks with "
        "policy_agents_pct < 1), overriding the suite's npc_policy_uri (ini: policyeval_npc_policy_uri)",
    )
    group.addoption(
        "--pytorch-config",
        type=existing_file,
        default=None,
        dest="policyeval_pytorch_config",
        metavar="PATH",
        help="architecture of pytorch:// checkpoints: Metta's YAML with a known _target_ (default: inferred "
        "from the checkpoint; ini: policyeval_pytorch_config)",
    )
    group.addoption(
        "--metta-preset",
        type=metta_preset,
        default=None,
        dest="policyeval_metta_preset",
        metavar="NAME",
        help="the Metta engine version a pytorch:// checkpoint was trained on: june-2025 (default) or "
        "july-2025; overrides a suite's metta_preset (ini: policyeval_metta_preset)",
    )
    group.addoption(
        "--save-replays",
        nargs="?",
        const=Path("replays"),
        type=replay_dir,
        default=None,
        dest="policyeval_replay_dir",
        metavar="DIR",
        help="write mettagrid replay files (.json.z) of the recorded episodes under DIR "
        "(default: replays); their paths go into the results as replay_url",
    )
    group.addoption(
        "--replay-episodes",
        type=non_negative_int,
        default=None,
        dest="policyeval_replay_episodes",
        metavar="N",
        help="episodes recorded per task for replay files and the HTML report (default 1; 0: none; "
        "ini: policyeval_replay_episodes)",
    )
    group.addoption(
        "--eval-output-uri",
        type=uri,
        default=None,
        dest="policyeval_output_uri",
        metavar="URI",
        help="publish results.json, evaluation_results.yaml and saved replays to a folder, "
        "s3://BUCKET/PREFIX "
        "or wandb://ENTITY/PROJECT[/NAME] (an artifact); a URI ending in .json names the JSON itself",
    )
    group.addoption(
        "--eval-progress",
        action="store_true",
        default=False,
        dest="policyeval_progress",
        help="show a live line per task while its episodes run (serial runs; xdist workers have no terminal)",
    )
    group.addoption(
        "--wandb",
        action="store_true",
        default=False,
        dest="policyeval_wandb",
        help="log scores, a task table and replay animations to one W&B run (WANDB_MODE=offline works)",
    )
    group.addoption(
        "--wandb-run-name",
        default=None,
        dest="policyeval_wandb_run_name",
        metavar="NAME",
        help="name of the --wandb run (default: W&B's)",
    )
    group.addoption(
        "--shard-id",
        type=non_negative_int,
        default=None,
        dest="policyeval_shard_id",
        metavar="I",
        help="run only shard I of --num-shards (0-based); every shard computes the same split",
    )
    group.addoption(
        "--num-shards",
        type=positive_int,
        default=None,
        dest="policyeval_num_shards",
        metavar="N",
        help="split the suites' tasks into N shards (for several machines; merge with `policyeval merge`)",
    )
    group.addoption(
        "--eval-ray",
        type=ray_address,
        default=None,
        dest="policyeval_ray",
        metavar="ADDRESS",
        help="run every task's evaluation on a Ray cluster: auto (the one this machine is in), local "
        "(start one here), HOST:PORT or ray://HOST:PORT; needs the 'ray' extra; not with -n "
        "(ini: policyeval_ray)",
    )
    group.addoption(
        "--eval-ray-resources",
        type=ray_resources,
        default=None,
        dest="policyeval_ray_resources",
        metavar="SPEC",
        help="what each task asks of a Ray node unless its suite says (resources:), e.g. "
        "cpus=1,gpus=0.25,memory_mb=4000,NAME=1 (default: 1 CPU, and 1 GPU with --device cuda; "
        "ini: policyeval_ray_resources)",
    )
    group.addoption(
        "--eval-ray-retries",
        type=retry_count,
        default=None,
        dest="policyeval_ray_retries",
        metavar="N",
        help="re-run a task lost with its Ray worker or node up to N times (default 3, at most 100; "
        "a task's own error is never retried; ini: policyeval_ray_retries)",
    )
    group.addoption(
        "--eval-ray-node-wait",
        type=non_negative_float,
        default=None,
        dest="policyeval_ray_node_wait",
        metavar="SECONDS",
        help="how long a task that no node of the Ray cluster can run waits for one to join (nodes "
        "starting, an autoscaler) before it is that task's error (default 60; ini: "
        "policyeval_ray_node_wait)",
    )
    for name, text in INI_KEYS.items():
        if name in LINE_LISTS:
            parser.addini(name, type="linelist", default=[], help=text)
        else:
            parser.addini(name, default="", help=text)


def _ini(config: pytest.Config, name: str, parse: Any) -> Any:
    raw = str(config.getini(name) or "").strip()
    if not raw:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"ini option {name} = {raw!r}: {exc}") from None


def _check_uri_overrides(config: pytest.Config) -> None:
    """`-o policyeval_baseline_uri=$BASELINE` with the variable unset: refused as the option is."""
    name = empty_uri_override(config.getoption("override_ini", None) or [])
    if name is not None:
        raise pytest.UsageError(
            f"-o {name}= is empty (an unset variable?): give a URI, or leave the option out"
        )


def options_from(config: pytest.Config) -> EvalOptions:
    """The run's options: the command line wins, then the ini file, then the defaults."""
    _check_uri_overrides(config)

    def pick(name: str, parse: Any) -> Any:
        # Each option's dest is also its ini key: the command line wins, then the ini file.
        value = config.getoption(name)
        return value if value is not None else _ini(config, name, parse)

    uris = tuple(config.getoption("policyeval_policy_uris") or config.getini("policyeval_policy_uris"))
    ini_dir = config.inipath.parent if config.inipath else config.rootpath  # ini paths are relative to it
    replay_episodes = pick("policyeval_replay_episodes", non_negative_int)
    shard_id, num_shards = config.getoption("policyeval_shard_id"), config.getoption("policyeval_num_shards")
    if (shard_id is None) != (num_shards is None):
        raise pytest.UsageError("--shard-id and --num-shards go together")
    if num_shards is not None and shard_id >= num_shards:
        raise pytest.UsageError(
            f"--shard-id {shard_id} is not below --num-shards {num_shards} (ids are 0-based)"
        )
    json_path = config.getoption("policyeval_json")
    yaml_path = config.getoption("policyeval_yaml")
    return EvalOptions(
        policy_uris=uris,
        num_episodes=pick("policyeval_num_episodes", episode_count),
        seed=pick("policyeval_seed", non_negative_int),
        device=pick("policyeval_device", device_name) or "cpu",
        gate=_gate(config),
        json_path=Path(json_path) if json_path else None,
        yaml_path=Path(yaml_path) if yaml_path else None,
        npc_policy_uri=pick("policyeval_npc_policy_uri", str),
        baseline_uri=pick("policyeval_baseline_uri", str),
        eval_cache=not config.getoption("policyeval_no_cache"),
        pytorch_config=config.getoption("policyeval_pytorch_config")
        or _ini(config, "policyeval_pytorch_config", lambda text: existing_file(str(ini_dir / text))),
        metta_preset=pick("policyeval_metta_preset", metta_preset),
        replay_dir=config.getoption("policyeval_replay_dir"),
        replay_episodes=1 if replay_episodes is None else replay_episodes,
        report_replays=writes_html_report(config) or config.getoption("policyeval_wandb"),
        shard=(shard_id, num_shards) if num_shards is not None else None,
        wandb_entity=_ini(config, "policyeval_wandb_entity", str),
        wandb_project=_ini(config, "policyeval_wandb_project", str),
        output_uri=pick("policyeval_output_uri", str),
        wandb=config.getoption("policyeval_wandb"),
        progress=config.getoption("policyeval_progress"),
        wandb_run_name=config.getoption("policyeval_wandb_run_name"),
        data_dir=pick("policyeval_data_dir", lambda text: (ini_dir / Path(text).expanduser()).resolve()),
    )


def ray_settings(config: pytest.Config) -> RaySettings | None:
    """--eval-ray and its companions (or the ini's), or None for a run on this machine."""
    from pytest_policyeval.ray_backend.settings import DEFAULT_NODE_WAIT_S, DEFAULT_RETRIES, RaySettings

    def pick(name: str, parse: Any) -> Any:
        value = config.getoption(name)
        return value if value is not None else _ini(config, name, parse)

    address = pick("policyeval_ray", ray_address)
    if address is None:
        return None
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no":
        raise pytest.UsageError(
            "--eval-ray and -n/--dist are two ways of running tasks in parallel; choose one "
            "(Ray balances across its nodes' CPUs itself)"
        )
    retries = pick("policyeval_ray_retries", retry_count)
    node_wait = pick("policyeval_ray_node_wait", non_negative_float)
    return RaySettings(
        address=address,
        resources=pick("policyeval_ray_resources", ray_resources),
        retries=DEFAULT_RETRIES if retries is None else retries,
        node_wait_s=DEFAULT_NODE_WAIT_S if node_wait is None else node_wait,
    )


def writes_html_report(config: pytest.Config) -> bool:
    """pytest-html is optional: its hooks are registered only when it is installed and asked for."""
    return config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))


def _gate(config: pytest.Config) -> str | None:
    """--eval-gate (or the ini's), checked once the run's plugins and conftests have registered
    their gates (at parse time only the built-in ones are known)."""
    given = config.getoption("policyeval_gate")
    if given is None:
        return _ini(config, "policyeval_gate", gate_kind)
    try:
        return gate_kind(given)
    except ValueError as exc:
        raise pytest.UsageError(f"argument --eval-gate: {exc}") from None
