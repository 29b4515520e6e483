"""pytorch:// against the producers: checkpoints in Metta's and PufferLib's own layouts.

Fixtures come from `upstream_metta.py`, which mirrors upstream's classes and forward pass and
never imports this project. They check loading by path alone, the arithmetic against upstream's
definition on the same tokens, the other direction (a project-written file loads strictly into
upstream's module), the older layouts, presets, and the hostile files seen in the wild.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import upstream_metta as upstream

from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy
from pytest_policyeval.policies.metta.adapter import DERIVED, ObservationMap
from pytest_policyeval.policies.metta.network import Policy, Recurrent
from pytest_policyeval.policies.metta.presets import PRESETS
from pytest_policyeval.policies.metta.sparse_encoder import SparseEncoder
from pytest_policyeval.spec import TokenSpec

REPO = Path(__file__).resolve().parents[1]
JUNE = PRESETS["june-2025"]
FEATURES = JUNE.feature_names(22, "test")
# Metta's default and two smaller sizes (and another pair of head sizes).
SIZES = [
    {"cnn_channels": 128, "hidden_size": 512, "action_nvec": (9, 10)},
    {"cnn_channels": 64, "hidden_size": 256, "action_nvec": (9, 10)},
    {"cnn_channels": 32, "hidden_size": 128, "action_nvec": (9, 4)},
]


def _identity_spec() -> TokenSpec:
    """An engine whose feature ids are the preset's own, with an 11x11 view: tokens pass unchanged."""
    return TokenSpec(
        engine="mettagrid",
        feature_names=tuple(FEATURES),
        tag_names=(),
        action_names=("noop", "move_north", "move_south", "move_west", "move_east"),
        num_agents=1,
        num_tokens=64,
        obs_height=11,
        obs_width=11,
        max_steps=100,
    )


def _tokens_and_derived(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upstream tokens (with duplicates and 255 values) that our adapter would take as they are,
    our derived values, and the same derived values as upstream global tokens at the end."""
    tokens = upstream.random_tokens(batch=3, num_tokens=40, max_tokens=64, seed=seed).clone()
    derived_ids = [FEATURES.index(name) for name in DERIVED]
    real = tokens[:, :, 0] != 255
    # The adapter derives these features itself: keep the engine's own out of the comparison.
    clash = real & torch.isin(tokens[:, :, 1].long(), torch.tensor(derived_ids))
    tokens[:, :, 1][clash] = 1
    tokens[:, 3] = tokens[:, 10]  # a duplicate (same feature and cell) later in the row ...
    tokens[:, 3, 2] = 17
    tokens[:, 10, 2] = 200  # ... whose later value must win
    tokens[:, 12, 2] = 255  # a value of 255 reads as 0
    tokens[2, 40:] = torch.tensor([0x37, 2, 9], dtype=torch.uint8)  # row 2 has no free slot
    rng = np.random.default_rng(seed)
    derived = torch.from_numpy(rng.integers(0, 250, (3, len(DERIVED))).astype(np.float32))
    globals_ = torch.zeros((3, len(DERIVED), 3), dtype=torch.uint8)
    globals_[:, :, 0] = 0x55
    globals_[:, :, 1] = torch.tensor(derived_ids)
    globals_[:, :, 2] = derived.to(torch.uint8)
    # Upstream: real tokens, the derived values as tokens, then the padding (if any).
    count = (tokens[:, :, 0] != 255).sum(dim=1)
    reference = torch.full((3, 64 + len(DERIVED), 3), 255, dtype=torch.uint8)
    for row in range(3):
        n = int(count[row])
        reference[row, :n] = tokens[row, :n]
        reference[row, n : n + len(DERIVED)] = globals_[row]
    return tokens, derived, reference


@pytest.mark.parametrize("size", SIZES, ids=["default", "64-256", "32-128"])
def test_an_upstream_checkpoint_loads_by_path_and_acts_as_upstream_computes(
    tmp_path: Path, size: dict
) -> None:
    path = upstream.write_upstream(tmp_path / "policy.pt", **size)
    policy = load_policy(f"pytorch://{path}")
    arch = policy.describe()["architecture"]
    assert arch["policy"]["cnn_channels"] == [size["cnn_channels"]] * 2
    assert arch["hidden_size"] == size["hidden_size"] and arch["policy"]["window"] == 11
    assert arch["policy"]["action_heads"] == list(size["action_nvec"])
    assert policy.describe()["layout"] == "puffer3" and policy.describe()["preset"] == "june-2025"
    state = torch.load(path, weights_only=True)
    network = policy.network
    observe = ObservationMap(_identity_spec(), policy.feature_names, policy.type_ids, 11, "test")
    sparse = SparseEncoder(network.policy)
    ours = ref = None
    for step in range(2):  # the second step checks the carried LSTM state too
        tokens, derived, reference = _tokens_and_derived(seed=step)
        padded = tokens[:, -1, 0] == 255
        assert padded.tolist() == [True, True, False]
        with torch.inference_mode():
            box = observe(tokens, derived, padded)
            assert torch.equal(box, upstream.reference_box(reference))
            encoded = sparse(*observe.cells(tokens, derived, padded))
            torch.testing.assert_close(encoded, network.policy.encode(box), rtol=1e-5, atol=1e-5)
            ours = network.advance(encoded, ours[2] if ours else network.initial_state(3))
        ref = upstream.reference_forward(state, reference, ref[2] if ref else None)
        for mine, theirs in zip(ours[0], ref[0], strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours[1], ref[1].squeeze(-1), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours[2][0], ref[2][0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours[2][1], ref[2][1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", SIZES[1:], ids=["64-256", "32-128"])
def test_a_file_this_project_writes_loads_strictly_into_upstreams_module(tmp_path: Path, size: dict) -> None:
    network = Recurrent(
        Policy(
            cnn_channels=size["cnn_channels"],
            hidden_size=size["hidden_size"],
            action_heads=size["action_nvec"],
        ),
        size["hidden_size"],
        size["hidden_size"],
    )
    path = tmp_path / "ours.pt"
    torch.save(network.state_dict(), path)
    module = upstream.upstream_module(**size)
    module.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert list(torch.load(path, weights_only=True)) == list(upstream.expected_shapes(**size))


@pytest.mark.parametrize("name", ["navigation", "laser_tag"])
def test_the_shipped_examples_are_in_upstreams_layout(name: str) -> None:
    saved = torch.load(REPO / f"examples/policies/{name}.pt", weights_only=True)
    expected = upstream.expected_shapes(cnn_channels=32, hidden_size=128, action_nvec=(9, 10))
    assert {key: tuple(value.shape) for key, value in saved.items()} == dict(expected)
    upstream.upstream_module(cnn_channels=32, hidden_size=128).load_state_dict(saved, strict=True)


def test_a_pre_upstream_max_vec_of_shape_c_still_loads(tmp_path: Path) -> None:
    state = upstream.upstream_state_dict(cnn_channels=32, hidden_size=128)
    state["policy.max_vec"] = state["policy.max_vec"].flatten().clone()
    torch.save(state, tmp_path / "old.pt")
    policy = load_policy(f"pytorch://{tmp_path / 'old.pt'}")
    assert torch.equal(policy.network.policy.max_vec.flatten(), state["policy.max_vec"])


@pytest.mark.parametrize(("layout", "label"), [("puffer2", "puffer2"), ("recurrent_fork", "recurrent-fork")])
def test_older_layouts_load_and_say_which_they_were(
    tmp_path: Path, layout: str, label: str, caplog: pytest.LogCaptureFixture
) -> None:
    size = {"cnn_channels": 32, "hidden_size": 128}
    torch.save(upstream.upstream_state_dict(**size, layout=layout), tmp_path / "old.pt")
    torch.save(upstream.upstream_state_dict(**size), tmp_path / "new.pt")
    with caplog.at_level(logging.WARNING):
        old = load_policy(f"pytorch://{tmp_path / 'old.pt'}")
    assert old.describe()["layout"] == label and "read as a" in caplog.text
    new = load_policy(f"pytorch://{tmp_path / 'new.pt'}")
    for key, value in new.network.state_dict().items():
        assert torch.equal(value, old.network.state_dict()[key]), key


def test_a_layout_whose_policy_differs_is_refused_naming_the_layout(tmp_path: Path) -> None:
    state = upstream.upstream_state_dict(cnn_channels=32, hidden_size=128, layout="recurrent_fork")
    state["policy.network.5.weight"] = torch.zeros(64, 33)
    torch.save(state, tmp_path / "fork.pt")
    with pytest.raises(PolicyLoadError, match=r"January 2025 PufferLib fork|layout seen"):
        load_policy(f"pytorch://{tmp_path / 'fork.pt'}")


# -- presets ----------------------------------------------------------------------------------------


def test_presets_name_features_and_actions_of_their_engine(tmp_path: Path) -> None:
    path = upstream.write_upstream(tmp_path / "p.pt", cnn_channels=32, hidden_size=128)
    july = load_policy(f"pytorch://{path}", LoadOptions(metta_preset="july-2025"))
    assert july.describe()["preset"] == "july-2025"
    assert july.feature_names[12:14] == ["agent:glyph", "resource_rewards"]
    assert july.feature_names.index("inv:heart") == 20
    assert july.action_types == sorted(july.action_types)  # a std::map over the names
    june = load_policy(f"pytorch://{path}")
    assert june.feature_names.index("inv:heart") == 18 and "attack_nearest" in june.action_types
    assert june.action_types[:3] == ["put_items", "get_items", "noop"]
    assert JUNE.reward_value(1.0) == 100 and JUNE.reward_value(3.0) == 255 and JUNE.reward_value(-1) == 0
    assert PRESETS["july-2025"].reward_value(3.0) == 300 % 256


def test_a_preset_that_does_not_fit_the_heads_is_a_clear_error(tmp_path: Path) -> None:
    path = upstream.write_upstream(tmp_path / "p.pt", cnn_channels=32, hidden_size=128, action_nvec=(7, 10))
    with pytest.raises(PolicyLoadError, match=r"head has 7 outputs but preset 'june-2025' has 9"):
        load_policy(f"pytorch://{path}")
    with pytest.raises(
        PolicyLoadError, match=r"unknown Metta preset 'may-2025'; known: \['july-2025', 'june-2025'"
    ):
        load_policy(f"pytorch://{path}", LoadOptions(metta_preset="may-2025"))
    config = tmp_path / "names.yaml"
    config.write_text(
        "_target_: metta.agent.external.example.Recurrent\n"
        "action_types: [noop, move, rotate, put_items, get_items, attack, swap]\n"
    )
    policy = load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))
    assert policy.action_types[0] == "noop"


# -- hostile files ----------------------------------------------------------------------------------

HOSTILE = {
    "huge": (upstream.write_huge_claim, r"claims 204\.9 GB but the file stores"),
    "zero-size": (upstream.write_zero_size, r"'policy.network.0.weight' is empty \(shape \(0, 22, 5, 5\)\)"),
    "int-weights": (
        upstream.write_int_weights,
        r"holds (int64|bool) values; a policy's weights are floating",
    ),
    "ambiguous": (
        upstream.write_ambiguous_wrapped,
        r"several state dicts in one file \(under \['model', 'ema'\]\)",
    ),
    "empty": (upstream.write_empty, r"empty file \(0 bytes\)"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_files_get_one_message_naming_file_and_cause(tmp_path: Path, kind: str) -> None:
    writer, message = HOSTILE[kind]
    path = tmp_path / f"{kind}.pt"
    if kind in ("huge", "empty"):
        writer(path)
    else:
        writer(path, cnn_channels=32, hidden_size=128)
    start = time.perf_counter()
    with pytest.raises(PolicyLoadError, match=message) as error:
        load_policy(f"pytorch://{path}")
    assert time.perf_counter() - start < 10
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_directory_and_a_missing_file_say_which(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="is a directory"):
        load_policy(f"pytorch://{tmp_path}")
    with pytest.raises(PolicyLoadError, match="no such file"):
        load_policy(f"pytorch://{tmp_path / 'nothing.pt'}")


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = upstream.write_pickle_payload(tmp_path / "evil.pt", marker, cnn_channels=32, hidden_size=128)
    with pytest.raises(PolicyLoadError, match=r"refused: it names .*open, which this loader does not accept"):
        load_policy(f"pytorch://{path}")
    assert not marker.exists()


@pytest.mark.parametrize("wrap", ["state_dict", "model", "lightning"])
def test_a_state_dict_nested_by_a_training_loop_is_unwrapped_and_said(
    tmp_path: Path, wrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "wrapped.pt"
    if wrap == "lightning":
        upstream.write_lightning_wrapped(path, cnn_channels=32, hidden_size=128)
    else:
        upstream.write_wrapped(path, key=wrap, cnn_channels=32, hidden_size=128)
    with caplog.at_level(logging.WARNING):
        policy = load_policy(f"pytorch://{path}")
    assert "nested under" in caplog.text
    expected = upstream.upstream_state_dict(cnn_channels=32, hidden_size=128)
    assert torch.equal(policy.network.state_dict()["policy.value.weight"], expected["policy.value.weight"])


def test_the_preset_is_chosen_by_option_or_suite_and_recorded_in_the_results(
    pytester: pytest.Pytester,
) -> None:
    import json

    import yaml
    from helpers import MINI_SUITE, write_suite

    path = upstream.write_upstream(pytester.path / "metta.pt", cnn_channels=32, hidden_size=128)
    suite = write_suite(pytester.path, MINI_SUITE)
    args = [str(suite), f"--policy-uri=pytorch://{path}", "-k", "easy", "--num-episodes=1"]

    def preset_of(*extra: str) -> tuple[str, str]:
        result = pytester.runpytest(*args, "--eval-json=r.json", "--eval-yaml=r.yaml", *extra)
        assert result.ret in (0, 1), result.stdout.str()
        checkpoint = json.loads((pytester.path / "r.json").read_text())["policies"][0]["checkpoints"][0]
        return checkpoint["policy_info"]["preset"], yaml.safe_load((pytester.path / "r.yaml").read_text())[
            "metta_preset"
        ]

    assert preset_of() == ("june-2025", "june-2025")
    assert preset_of("--metta-preset=july-2025") == ("july-2025", "july-2025")
    suite.write_text(suite.read_text().replace("name: mini", "name: mini\nmetta_preset: july-2025"))
    assert preset_of() == ("july-2025", "july-2025")
    assert preset_of("--metta-preset=june-2025") == ("june-2025", "june-2025")  # the option wins
    result = pytester.runpytest(*args, "--metta-preset=june-2024")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown Metta preset 'june-2024'; known: ?'july-2025', 'june-2025'?*"])
    suite.write_text(suite.read_text().replace("metta_preset: july-2025", "metta_preset: june-2024"))
    result = pytester.runpytest(*args)
    result.stdout.fnmatch_lines(["*key 'metta_preset': unknown preset 'june-2024'*"])
