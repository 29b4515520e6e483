"""pytorch:// Metta external checkpoints: inferred and configured architectures, refusals, adapters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import EASY_MAP, MINI_SUITE, grid_env_spec, write_suite

from pytest_policyeval.collection.suite import load_suite
from pytest_policyeval.engines.mettagrid.simulation import EpisodeBatch
from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy
from pytest_policyeval.policies.metta.adapter import DERIVED, ActionMap, ObservationMap
from pytest_policyeval.policies.metta.network import Policy, Recurrent
from pytest_policyeval.policies.metta.presets import DEFAULT_PRESET, PRESETS
from pytest_policyeval.policies.metta.sparse_encoder import SparseEncoder
from pytest_policyeval.policies.observations import used_tokens
from pytest_policyeval.runner import play_episodes
from pytest_policyeval.spec import TokenSpec

JUNE = PRESETS[DEFAULT_PRESET]
FEATURES = JUNE.feature_names(22, "test")
# Nothing like Metta's defaults: a 15x15 box, uneven CNN widths, a 6-way argument head.
ODD = {
    "policy": {
        "obs_channels": 22,
        "cnn_channels": [16, 24],
        "hidden_size": 48,
        "window": 15,
        "kernel_sizes": [5, 3],
        "strides": [3, 1],
        "cnn_hidden": 40,
        "self_hidden": 24,
        "action_heads": [9, 6],
    },
    "input_size": 64,
    "hidden_size": 48,
}

# Metta's layout at a small size: the second convolution covers its whole 3x3 input.
SMALL = {
    "policy": {"obs_channels": 22, "cnn_channels": 8, "hidden_size": 32, "window": 11},
    "input_size": 32,
    "hidden_size": 32,
}
REPO = Path(__file__).resolve().parents[1]


def save_metta(path: Path, arch: dict = ODD, seed: int = 0, drop: str = "") -> Path:
    torch.manual_seed(seed)
    network = Recurrent(Policy(**arch["policy"]), arch["input_size"], arch["hidden_size"])
    state = {key: value for key, value in network.state_dict().items() if not key.startswith(drop or "\0")}
    torch.save(state, path)
    return path


def test_non_default_sizes_load_from_the_path_alone(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt")
    policy = load_policy(f"pytorch://{path}")
    assert policy.describe()["architecture"] == ODD
    assert policy.describe()["kind"] == "metta-external"
    saved = torch.load(path, weights_only=True)
    for key, value in policy.network.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert policy.action_types == list(JUNE.action_types)
    assert policy.feature_names == FEATURES
    assert policy.describe()["preset"] == "june-2025"


def test_inferred_sizes_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save_metta(tmp_path / "odd.pt")
    with caplog.at_level("INFO"):
        load_policy(f"pytorch://{path}")
    assert "'window': 15" in caplog.text and "'cnn_channels': [16, 24]" in caplog.text


@pytest.mark.parametrize("keep", ["lstm", "cell"])
def test_either_copy_of_the_shared_lstm_weights_is_enough(tmp_path: Path, keep: str) -> None:
    drop = "cell." if keep == "lstm" else "lstm."
    path = save_metta(tmp_path / "half.pt", drop=drop)
    policy = load_policy(f"pytorch://{path}")
    saved = torch.load(path, weights_only=True)
    assert torch.equal(
        policy.network.cell.weight_ih, saved[f"{keep}.weight_ih" + ("_l0" if keep == "lstm" else "")]
    )


def test_a_mismatching_checkpoint_is_refused_naming_key_and_shapes(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt")
    state = torch.load(path, weights_only=True)
    state["policy.value.weight"] = torch.zeros(1, 47)
    torch.save(state, path)
    with pytest.raises(PolicyLoadError) as error:
        load_policy(f"pytorch://{path}")
    message = str(error.value)
    assert "'policy.value.weight'" in message and "(1, 47)" in message and "(1, 48)" in message


def test_a_config_that_does_not_match_is_refused(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt")
    config = tmp_path / "metta.yaml"
    config.write_text(
        textwrap.dedent(
            """
            _target_: metta.agent.external.example.Recurrent
            input_size: 512
            hidden_size: 512
            policy:
              _target_: metta.agent.external.example.Policy
              cnn_channels: 128
              hidden_size: 512
            """
        )
    )
    with pytest.raises(PolicyLoadError) as error:
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))
    message = str(error.value)
    assert "'policy.network.0.weight'" in message
    assert "(16, 22, 5, 5)" in message and "(128, 22, 5, 5)" in message


def test_a_nested_config_builds_the_architecture_and_its_names_override_the_preset(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt")
    features = [f"feature_{i}" for i in range(22)]
    config = tmp_path / "odd.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            _target_: metta.agent.external.example.Recurrent
            input_size: 64
            hidden_size: 48
            policy:
              _target_: metta.agent.external.example.Policy
              cnn_channels: [16, 24]
              hidden_size: 48
              window: 15
              cnn_hidden: 40
              self_hidden: 24
            feature_names: {features}
            action_types: [noop, move, rotate, attack, get_items, put_items, swap, change_color, change_glyph]
            """
        )
    )
    policy = load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))
    assert policy.feature_names == features
    assert policy.action_types[3] == "attack"
    assert policy.network.window == 15


def test_a_config_target_that_is_a_policy_alone_is_refused(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt")
    config = tmp_path / "bad.yaml"
    config.write_text("_target_: metta.agent.external.example.Policy\n")
    with pytest.raises(PolicyLoadError, match="_target_ is a Policy; pytorch:// needs a Recurrent"):
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("not a checkpoint", r"not a PyTorch checkpoint \(torch.save's zip format\)"),
        ({"policy.value.weight": torch.zeros(1, 4)}, "lacks 'policy.network.0.weight'"),
    ],
)
def test_files_that_are_not_metta_checkpoints_get_one_clear_error(
    tmp_path: Path, payload, fragment: str
) -> None:
    path = tmp_path / "x.pt"
    if isinstance(payload, str):
        path.write_text(payload)
    else:
        torch.save(payload, path)
    with pytest.raises(PolicyLoadError, match=fragment):
        load_policy(f"pytorch://{path}")


def _spec(**changes) -> TokenSpec:
    base = {
        "feature_names": ("last_reward", "tag", "inv:heart", "agent:group"),
        "tag_names": ("type:agent", "type:altar", "type:wall", "team:red"),
        "action_names": ("noop", "move_north", "move_south", "move_west", "move_east"),
        "num_agents": 1,
        "num_tokens": 8,
        "obs_height": 3,
        "obs_width": 3,
        "max_steps": 10,
        "resource_names": ("heart",),
    }
    return TokenSpec(engine="mettagrid", **{**base, **changes})


def _derived(**values: float) -> torch.Tensor:
    return torch.tensor([[values.get(name, 0.0) for name in DERIVED]])


def test_observations_map_by_name_and_derive_type_orientation_and_inventory() -> None:
    spec = _spec()
    observe = ObservationMap(spec, FEATURES, JUNE.type_ids, 5, "test")
    assert observe.derived == list(DERIVED)
    tokens = np.full((1, 8, 3), 0xFF, dtype=np.uint8)
    tokens[0, 0] = (0x00, 1, 2)  # a wall (tag value 2) at the top-left of the 3x3 view
    tokens[0, 1] = (0x12, 1, 1)  # an altar (tag value 1) right of the agent
    tokens[0, 2] = (0x11, 2, 5)  # five hearts (inv:heart, june's id 18) on the agent's cell
    tokens[0, 3] = (0xFE, 0, 3)  # the engine's own last_reward token: replaced by the derived one
    tokens[0, 4] = (0x11, 1, 3)  # team tag: not an object type, ignored
    derived = _derived(**{"agent:orientation": 2, "last_action": 4, "last_action_arg": 1, "last_reward": 100})
    box = observe(torch.from_numpy(tokens), derived, torch.tensor([True]))[0]
    channel = {name: index for index, name in enumerate(FEATURES)}
    # The 3x3 view is centred in the 5x5 box: view (r, c) -> box (r + 1, c + 1).
    assert box[channel["type_id"], 1, 1] == 1 and box[channel["type_id"], 2, 3] == 8
    assert channel["inv:heart"] == 18 and box[18, 2, 2] == 5
    assert box[channel["last_reward"], 2, 2] == 100
    assert box[channel["agent:orientation"], 2, 2] == 2
    assert box[channel["last_action"], 2, 2] == 4 and box[channel["last_action_arg"], 2, 2] == 1
    assert box.sum() == 1 + 8 + 5 + 100 + 2 + 4 + 1


def test_the_box_is_filled_as_metta_filled_it_later_tokens_win_and_255_reads_as_zero() -> None:
    spec = _spec(obs_height=5, obs_width=5, num_tokens=6)
    observe = ObservationMap(spec, FEATURES, JUNE.type_ids, 5, "test")
    tokens = np.full((2, 6, 3), 0xFF, dtype=np.uint8)
    tokens[:, 0] = (0x00, 1, 0)  # an agent (type_id 0) in the corner ...
    tokens[:, 1] = (0x00, 1, 2)  # ... then a wall in the same cell: the later one wins, no sum
    tokens[:, 2] = (0x22, 2, 7)  # 7 hearts, then 255 hearts (255 reads as 0) on the same cell
    tokens[:, 3] = (0x22, 2, 255)
    tokens[:, 4] = (0x34, 1, 1)  # an altar elsewhere
    tokens[1, 5] = (0x34, 3, 9)  # row 1 has no free slot: no padding token
    padded = torch.from_numpy(tokens[:, -1, 0] == 0xFF)
    assert padded.tolist() == [True, False]
    box = observe(torch.from_numpy(tokens), _derived().expand(2, -1), padded)
    assert box[:, 18, 2, 2].tolist() == [0, 0]
    assert box[:, 0, 3, 4].tolist() == [8, 8]
    # Metta's padding token [0, 0, 0] wrote type_id 0 into the corner after the wall, so only the
    # row without free slots still shows the wall there.
    assert box[:, 0, 0, 0].tolist() == [0, 1]
    assert box[0].count_nonzero() == 1 and box[1].count_nonzero() == 3  # wall, altar, agent:group 9


@pytest.mark.parametrize(("arch", "dense"), [(SMALL, True), (ODD, False)], ids=["metta-layout", "odd"])
def test_the_sparse_encoder_gives_what_the_box_and_convolutions_give(arch: dict, dense: bool) -> None:
    torch.manual_seed(1)
    policy = Recurrent(Policy(**arch["policy"]), arch["input_size"], arch["hidden_size"]).policy.eval()
    policy.max_vec.copy_(torch.rand(1, 22, 1, 1) * 9 + 1)
    policy.max_vec[0, 3] = 0  # a feature the checkpoint never saw reads as zero
    encoder = SparseEncoder(policy)
    assert encoder.second_is_dense == dense
    # laser_tag tokens: objects with type tags, teams, inventories, global tokens.
    task = load_suite(REPO / "suites/laser_tag.yaml").tasks[0]
    batch = EpisodeBatch(task, [11, 12, 13])
    observe = ObservationMap(batch.spec, FEATURES, JUNE.type_ids, policy.window, "test")
    rng = np.random.default_rng(0)
    try:
        for _ in range(12):
            tokens = torch.from_numpy(used_tokens(batch.observations))
            derived = torch.from_numpy(rng.integers(0, 12, (len(tokens), len(DERIVED))).astype(np.float32))
            padded = torch.from_numpy(rng.random(len(tokens)) < 0.5)
            with torch.inference_mode():
                box = observe(tokens, derived, padded)
                expected = policy.encode(box)
                got = encoder(*observe.cells(tokens, derived, padded))
            assert box.count_nonzero() > 3 * len(tokens)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            batch.actions[:] = rng.integers(0, len(batch.spec.action_names), len(batch.actions))
            batch.step(list(range(3)))
    finally:
        batch.close()


def test_unused_token_slots_are_dropped_up_to_the_last_slot_any_agent_uses() -> None:
    tokens = np.full((3, 10, 3), 0xFF, dtype=np.uint8)
    tokens[0, :2] = 1
    tokens[2, :5] = 2
    tokens[1, 6] = (0xFE, 4, 1)  # a global token after a gap still counts
    assert used_tokens(tokens).shape == (3, 7, 3)
    assert np.array_equal(used_tokens(tokens), tokens[:, :7])
    assert used_tokens(np.full((2, 10, 3), 0xFF, dtype=np.uint8)).shape == (2, 1, 3)


def test_metta_actions_become_absolute_moves_with_tracked_orientation() -> None:
    spec = _spec()
    actions = ActionMap(spec, list(JUNE.action_types), 10, "test")
    kind = {name: index for index, name in enumerate(JUNE.action_types)}
    env = {name: index for index, name in enumerate(spec.action_names)}
    facing = np.array([0, 0, 3, 1, 2])
    kinds = np.array([kind["move"], kind["rotate"], kind["move"], kind["attack"], kind["swap"]])
    args = np.array([0, 3, 1, 4, 0])
    moves, new_facing = actions(kinds, args, facing)
    assert moves.tolist() == [
        env["move_north"],
        env["noop"],
        env["move_west"],
        env["move_south"],
        env["noop"],
    ]
    assert new_facing.tolist() == [0, 3, 3, 1, 2]
    # And back: which (type, arg) makes an agent facing north go east, south, north?
    label_kinds, label_args = actions.label(
        np.array([env["move_east"], env["move_south"], env["move_north"]]), np.zeros(3, dtype=np.int8)
    )
    assert label_kinds.tolist() == [kind["rotate"], kind["move"], kind["move"]]
    assert label_args.tolist() == [3, 1, 0]


def test_an_environment_without_moves_is_a_clear_error() -> None:
    with pytest.raises(PolicyLoadError, match=r"need the environment actions \['move_west'"):
        ActionMap(
            _spec(action_names=("noop", "move_north", "move_south", "move_east")), ["noop", "move"], 2, "p"
        )


def test_a_metta_policy_plays_deterministically_whatever_the_batch(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt", seed=3)
    coin = "#########\n#_..@...#\n#########"
    suite = write_suite(
        tmp_path, MINI_SUITE.replace("num_episodes: 4", "num_episodes: 6"), maps={"easy": coin, "hard": coin}
    )
    task = load_suite(suite).tasks[0]
    policy = load_policy(f"pytorch://{path}")
    six = play_episodes(task, policy).episodes
    three = play_episodes(task.with_overrides(num_episodes=3), policy).episodes
    assert [(e.rewards, e.steps) for e in three] == [(e.rewards, e.steps) for e in six[:3]]
    assert len({e.steps for e in six}) > 1


def test_nan_weights_stop_the_task_with_the_policy_step_and_slot(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt")
    state = torch.load(path, weights_only=True)
    state["policy.actor.0.bias"] = torch.full((9,), float("nan"))
    torch.save(state, path)
    actor = load_policy(f"pytorch://{path}").actor(grid_env_spec(tmp_path, EASY_MAP))
    actor.reset(np.array([1, 2], dtype=np.uint64))
    tokens = np.full((2, 200, 3), 0xFF, dtype=np.uint8)
    with pytest.raises(RuntimeError, match=r"non-finite logits .* at step 4 for agent slot 1"):
        actor.act(tokens[1:], np.array([1]), 4)


def test_the_option_reaches_the_loader_and_a_missing_config_is_a_usage_error(
    pytester: pytest.Pytester, mini_suite: Path
) -> None:
    path = save_metta(pytester.path / "odd.pt")
    config = pytester.path / "wrong.yaml"
    config.write_text(
        "_target_: metta.agent.external.example.Recurrent\n"
        "policy:\n  _target_: metta.agent.external.example.Policy\n  cnn_channels: 128\n"
    )
    result = pytester.runpytest(
        str(mini_suite), f"--policy-uri=pytorch://{path}", f"--pytorch-config={config}", "-k", "easy"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*policy could not be loaded*'policy.network.0.weight'*"])
    result = pytester.runpytest(
        str(mini_suite), f"--policy-uri=pytorch://{path}", "--pytorch-config=nope.yaml"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pytorch-config*no such file: nope.yaml*"])


def test_the_actor_feeds_back_what_metta_reported_action_type_reward_and_completion(tmp_path: Path) -> None:
    path = save_metta(tmp_path / "odd.pt", arch=SMALL)
    policy = load_policy(f"pytorch://{path}")
    spec = grid_env_spec(tmp_path, EASY_MAP)
    actor = policy.actor(spec)
    actor.reset(np.array([5, 6], dtype=np.uint64))
    tokens = np.full((2, spec.num_tokens, 3), 0xFF, dtype=np.uint8)
    slots = np.array([0, 1])
    actor.act(tokens, slots, 0)
    kinds, args = (
        actor.memory[:, DERIVED.index("last_action")],
        actor.memory[:, DERIVED.index("last_action_arg")],
    )
    actor.rewarded(np.array([1.0, 0.25], dtype=np.float32), slots)
    step = 7
    box = actor.observe(tokens, slots, step)
    centre = policy.network.window // 2
    channel = {name: index for index, name in enumerate(policy.feature_names)}
    assert box[:, channel["last_action"], centre, centre].tolist() == kinds.tolist()
    assert box[:, channel["last_action_arg"], centre, centre].tolist() == args.tolist()
    assert box[:, channel["last_reward"], centre, centre].tolist() == [100, 25]
    expected = np.floor(255 * step / spec.max_steps + 0.5)
    assert box[:, channel["episode_completion_pct"], centre, centre].tolist() == [expected, expected]
    # An agent that turned faces its new orientation, which it sees on its own cell.
    turned = actor.memory[:, DERIVED.index("agent:orientation")]
    assert box[:, channel["agent:orientation"], centre, centre].tolist() == turned.tolist()


def test_a_feature_the_task_expresses_through_another_is_read_through_it() -> None:
    spec = _spec(
        feature_names=("last_reward", "tag", "inv:ready", "agent:group"),
        resource_names=("ready",),
        equivalent_features=(("agent:frozen", "inv:ready", -1.0, 10.0),),
    )
    observe = ObservationMap(spec, FEATURES, JUNE.type_ids, 5, "test")
    tokens = np.full((1, 8, 3), 0xFF, dtype=np.uint8)
    tokens[0, 0] = (0x11, 2, 3)  # 3 of the source on the agent's cell: 10 - 3 = 7 frozen steps
    tokens[0, 1] = (0x12, 2, 10)  # a full source: 0
    box = observe(torch.from_numpy(tokens), _derived(), torch.tensor([True]))[0]
    frozen = FEATURES.index("agent:frozen")
    assert box[frozen, 2, 2] == 7 and box[frozen, 2, 3] == 0
    assert box.count_nonzero() == 1
