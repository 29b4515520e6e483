"""Checks of the upstream-layout fixtures in tests/upstream_metta.py themselves (not of the project)."""

from __future__ import annotations

import pickle
import pickletools
import subprocess
import sys
import textwrap
import zipfile

import pytest
import torch
import upstream_metta as um

DEFAULT_SHAPES = {
    "policy.max_vec": (1, 22, 1, 1),
    "policy.network.0.weight": (128, 22, 5, 5),
    "policy.network.0.bias": (128,),
    "policy.network.2.weight": (128, 128, 3, 3),
    "policy.network.2.bias": (128,),
    "policy.network.5.weight": (256, 128),
    "policy.network.5.bias": (256,),
    "policy.self_encoder.0.weight": (256, 22),
    "policy.self_encoder.0.bias": (256,),
    "policy.actor.0.weight": (9, 512),
    "policy.actor.0.bias": (9,),
    "policy.actor.1.weight": (10, 512),
    "policy.actor.1.bias": (10,),
    "policy.value.weight": (1, 512),
    "policy.value.bias": (1,),
    "lstm.weight_ih_l0": (2048, 512),
    "lstm.weight_hh_l0": (2048, 512),
    "lstm.bias_ih_l0": (2048,),
    "lstm.bias_hh_l0": (2048,),
    "cell.weight_ih": (2048, 512),
    "cell.weight_hh": (2048, 512),
    "cell.bias_ih": (2048,),
    "cell.bias_hh": (2048,),
}
SIZES = [(128, 512), (64, 256), (32, 128)]
SMALL = {"cnn_channels": 32, "hidden_size": 128}


def _token(x: int, y: int, feature: int, value: int) -> list[int]:
    return [(x << 4) | y, feature, value]


def _tokens(*rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.uint8)


PAD = [255, 255, 255]


# ---------------------------------------------------------------------------------------------- layout


def test_default_state_dict_keys_order_shapes_dtypes():
    state = um.upstream_state_dict()
    assert len(state) == 23
    assert list(state) == list(DEFAULT_SHAPES)
    assert {k: tuple(v.shape) for k, v in state.items()} == DEFAULT_SHAPES
    assert all(v.dtype == torch.float32 for v in state.values())
    assert state["policy.max_vec"].flatten().tolist() == list(um.UPSTREAM_MAX_VEC)
    assert state["policy.max_vec"][0, 5, 0, 0] == 254.0


@pytest.mark.parametrize(("channels", "hidden"), SIZES)
@pytest.mark.parametrize("layout", um.LAYOUTS)
def test_sizes_and_layouts(channels, hidden, layout):
    state = um.upstream_state_dict(cnn_channels=channels, hidden_size=hidden, layout=layout)
    expected = um.expected_shapes(channels, hidden, layout=layout)
    assert list(state) == list(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == dict(expected)
    assert len(state) == (19 if layout == "recurrent_fork" else 23)
    if layout == "puffer2":
        assert list(state)[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    if layout == "recurrent_fork":
        assert not any(k.startswith("cell.") for k in state)
        assert "recurrent.weight_hh_l0" in state


@pytest.mark.parametrize(("layout", "lstm_prefix"), [("puffer3", "lstm."), ("puffer2", "")])
def test_lstm_and_cell_share_tensors(tmp_path, layout, lstm_prefix):
    state = um.upstream_state_dict(layout=layout, **SMALL)
    for suffix in um.LSTM_SUFFIXES:
        lstm, cell = state[f"{lstm_prefix}{suffix}_l0"], state[f"cell.{suffix}"]
        assert torch.equal(lstm, cell)
        assert lstm.data_ptr() == cell.data_ptr()
    torch.save(state, tmp_path / "p.pt")
    loaded = torch.load(tmp_path / "p.pt", weights_only=True)
    assert list(loaded) == list(state)
    for suffix in um.LSTM_SUFFIXES:
        assert loaded[f"{lstm_prefix}{suffix}_l0"].data_ptr() == loaded[f"cell.{suffix}"].data_ptr()
        assert torch.equal(loaded[f"cell.{suffix}"], state[f"cell.{suffix}"])


def test_layouts_hold_the_same_values_and_load_strictly():
    p3 = um.upstream_state_dict(**SMALL)
    fork = um.upstream_state_dict(layout="recurrent_fork", **SMALL)
    p2 = um.upstream_state_dict(layout="puffer2", **SMALL)
    for key, value in p3.items():
        if key.startswith("policy."):
            assert torch.equal(fork[key], value) and torch.equal(p2[key], value)
    for suffix in um.LSTM_SUFFIXES:
        assert torch.equal(fork[f"recurrent.{suffix}_l0"], p3[f"lstm.{suffix}_l0"])
        assert torch.equal(p2[f"{suffix}_l0"], p3[f"lstm.{suffix}_l0"])
    for layout, expected in (("puffer3", p3), ("recurrent_fork", fork), ("puffer2", p2)):
        module = um.upstream_module(seed=5, layout=layout, **SMALL)
        assert not torch.equal(module.state_dict()["policy.value.weight"], p3["policy.value.weight"])
        module.load_state_dict(um.rename_layout(p3, layout), strict=True)
        loaded = module.state_dict()
        assert list(loaded) == list(expected)
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    module = um.upstream_module(**SMALL)
    assert module.cell.weight_ih is module.lstm.weight_ih_l0  # tie survives load_state_dict
    with pytest.raises(RuntimeError):
        module.load_state_dict(fork, strict=True)


def test_seeded_weights_are_deterministic_and_non_trivial():
    before = torch.random.get_rng_state()
    a = um.upstream_state_dict(seed=3, **SMALL)
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    b = um.upstream_state_dict(seed=3, **SMALL)
    c = um.upstream_state_dict(seed=4, **SMALL)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["policy.network.0.weight"], c["policy.network.0.weight"])
    for key, value in a.items():
        if key.endswith("bias") or "bias_" in key:
            assert value.abs().max() > 0.01, key  # biases perturbed away from upstream's zeros


# ---------------------------------------------------------------------------------------------- box


def test_box_later_duplicate_wins():
    tokens = _tokens([_token(3, 4, 7, 10), _token(3, 4, 7, 20), _token(3, 4, 8, 30), _token(3, 4, 7, 40)])
    box = um.reference_box(tokens)
    assert box.shape == (1, 22, 11, 11)
    assert box[0, 7, 3, 4] == 40.0
    assert box[0, 8, 3, 4] == 30.0
    assert box.count_nonzero() == 2


def test_box_axes_and_255_replacement():
    tokens = _tokens([_token(1, 9, 2, 5), _token(6, 2, 3, 255), [255, 4, 9], [0x21, 255, 17]])
    original = tokens.clone()
    box = um.reference_box(tokens)
    assert torch.equal(tokens, original)  # input not mutated (upstream mutates its own input)
    assert box[0, 2, 1, 9] == 5.0  # x = high nibble -> dim 2, y = low nibble -> dim 3
    assert box[0, 3, 6, 2] == 0.0  # value 255 became 0
    assert box[0, 4, 0, 0] == 9.0  # coordinate byte 255 became 0 -> cell (0, 0)
    assert box[0, 0, 2, 1] == 17.0  # feature id 255 became feature 0
    assert box.count_nonzero() == 3


def test_box_padding_writes_zero_at_feature0_cell00():
    real = [_token(0, 0, 0, 50), _token(0, 0, 1, 60), _token(5, 5, 0, 70)]
    padded = um.reference_box(_tokens([*real, PAD, PAD]))
    unpadded = um.reference_box(_tokens(real))
    assert unpadded[0, 0, 0, 0] == 50.0
    assert padded[0, 0, 0, 0] == 0.0  # padding [255,255,255] -> [0,0,0] overwrote the real token
    assert padded[0, 1, 0, 0] == 60.0 and padded[0, 0, 5, 5] == 70.0
    token_first = um.reference_box(_tokens([PAD, *real]))
    assert token_first[0, 0, 0, 0] == 50.0  # only a LATER token wins


@pytest.mark.parametrize("bad", [_token(11, 0, 1, 5), _token(0, 15, 1, 5), _token(1, 1, 22, 5)])
def test_box_bounds_june_raises_july_drops(bad):
    tokens = _tokens([_token(2, 2, 1, 9), bad])
    with pytest.raises(IndexError):
        um.reference_box(tokens, version="june")
    box = um.reference_box(tokens, version="july")
    assert box.count_nonzero() == 1 and box[0, 1, 2, 2] == 9.0


def test_box_batches_are_independent_and_numpy_is_accepted():
    tokens = _tokens([_token(1, 1, 1, 1), PAD], [_token(1, 1, 1, 2), _token(2, 2, 2, 3)])
    box = um.reference_box(tokens.numpy())
    assert box[0, 1, 1, 1] == 1.0 and box[1, 1, 1, 1] == 2.0 and box[0, 2, 2, 2] == 0.0


# ---------------------------------------------------------------------------------------------- forward


def test_reference_forward_shapes_determinism_and_max_vec():
    state = um.upstream_state_dict(**SMALL)
    tokens = um.random_tokens(batch=3, num_tokens=30, max_tokens=40)
    logits, value, (h, c) = um.reference_forward(state, tokens)
    assert [tuple(t.shape) for t in logits] == [(3, 9), (3, 10)]
    assert value.shape == (3, 1) and h.shape == (3, 128) and c.shape == (3, 128)
    assert logits[0].std() > 0.01 and h.abs().mean() > 0.01
    again = um.reference_forward(state, tokens)
    pairs = zip([*logits, value, h, c], [*again[0], again[1], *again[2]], strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    changed = dict(state)
    changed["policy.max_vec"] = state["policy.max_vec"] * 2
    other_logits, other_value, _ = um.reference_forward(changed, tokens)
    assert not torch.allclose(other_logits[0], logits[0], atol=1e-4)
    assert not torch.allclose(other_value, value, atol=1e-4)


def test_reference_forward_sees_biases_and_state():
    state = um.upstream_state_dict(**SMALL)
    tokens = um.random_tokens(batch=2, num_tokens=20, max_tokens=24)
    logits, _, hc = um.reference_forward(state, tokens)
    no_bias = dict(state)
    no_bias["policy.network.5.bias"] = torch.zeros_like(state["policy.network.5.bias"])
    assert not torch.allclose(um.reference_forward(no_bias, tokens)[0][0], logits[0], atol=1e-4)
    stepped, _, _ = um.reference_forward(state, tokens, lstm_state=hc)
    assert not torch.allclose(stepped[0], logits[0], atol=1e-4)
    batched = um.reference_forward(state, tokens, lstm_state=(hc[0][None], hc[1][None]))
    assert torch.equal(batched[0][1], stepped[1])


@pytest.mark.parametrize("layout", um.LAYOUTS)
@pytest.mark.parametrize("version", um.VERSIONS)
def test_reference_forward_matches_module_built_like_upstream(layout, version):
    module = um.upstream_module(layout=layout, version=version, **SMALL)
    state = module.state_dict()
    tokens = um.random_tokens(batch=3, num_tokens=25, max_tokens=32, seed=1)
    ref = um.reference_forward(state, tokens, version=version)
    with torch.no_grad():
        got = module.forward_eval(tokens)
    for a, b in zip([*ref[0], ref[1], *ref[2]], [*got[0], got[1], *got[2]], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    ref2 = um.reference_forward(state, tokens, lstm_state=ref[2], version=version)
    with torch.no_grad():
        got2 = module.forward_eval(tokens, got[2])
    torch.testing.assert_close(ref2[1], got2[1], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------- hostile


def _pickle_of(path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        return archive.read(name)


def test_huge_claim_is_small_valid_zip_claiming_220_gb(tmp_path):
    path = um.write_huge_claim(tmp_path / "huge.pt")
    assert path.stat().st_size < 1_000_000
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
    assert any(n.endswith("/data.pkl") for n in names) and any(n.endswith("/data/0") for n in names)
    ops = list(pickletools.genops(_pickle_of(path)))
    globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_ == {"torch._utils _rebuild_tensor_v2", "torch FloatStorage", "collections OrderedDict"}
    ints = [arg for op, arg, _ in ops if op.name in ("LONG1", "BININT", "BININT1", "BININT2")]
    assert 55_000_000_000 in ints and 100_000_000 in ints  # storage numel (x 4 bytes) and dim 0


def test_huge_claim_machinery_yields_loadable_file_when_honest(tmp_path):
    path = um.write_huge_claim(tmp_path / "honest.pt", shape=(2, 2))
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == ["policy.network.0.weight"]
    assert torch.equal(loaded["policy.network.0.weight"], torch.zeros(2, 2))


def test_huge_claim_fails_fast_in_a_memory_capped_process(tmp_path):
    path = um.write_huge_claim(tmp_path / "huge.pt")
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
        import torch
        for mmap in (False, True):
            try:
                torch.load({str(path)!r}, weights_only=True, mmap=mmap)
            except Exception as exc:
                print("REFUSED", mmap, type(exc).__name__, exc)
            else:
                print("LOADED", mmap)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("REFUSED") for line in lines), result.stdout


def test_zero_size_and_int_weights(tmp_path):
    zero = torch.load(um.write_zero_size(tmp_path / "zero.pt", **SMALL), weights_only=True)
    assert zero["policy.network.0.weight"].shape == (0, 22, 5, 5)
    assert list(zero) == list(um.expected_shapes(32, 128))
    ints = torch.load(um.write_int_weights(tmp_path / "int.pt", **SMALL), weights_only=True)
    assert ints["policy.network.5.weight"].dtype == torch.int64
    assert ints["policy.network.5.weight"].shape == (64, 32)
    assert ints["policy.self_encoder.0.weight"].dtype == torch.bool
    assert ints["policy.self_encoder.0.weight"].shape == (64, 22)


def test_wrapped_variants(tmp_path):
    plain = um.upstream_state_dict(**SMALL)
    for key in ("state_dict", "model"):
        wrapped = torch.load(um.write_wrapped(tmp_path / f"{key}.pt", key=key, **SMALL), weights_only=True)
        assert list(wrapped) == [key]
        assert all(torch.equal(wrapped[key][k], plain[k]) for k in plain)
    lightning = torch.load(um.write_lightning_wrapped(tmp_path / "pl.pt", **SMALL), weights_only=True)
    assert lightning["epoch"] == 3 and lightning["global_step"] == 10
    assert list(lightning["state_dict"]) == list(plain)
    both = torch.load(um.write_ambiguous_wrapped(tmp_path / "amb.pt", **SMALL), weights_only=True)
    assert set(both) == {"model", "ema"} and list(both["model"]) == list(both["ema"]) == list(plain)
    assert not torch.equal(both["model"]["policy.value.weight"], both["ema"]["policy.value.weight"])
    assert um.write_empty(tmp_path / "empty.pt").stat().st_size == 0


def test_pickle_payload_is_refused_by_weights_only(tmp_path):
    marker = tmp_path / "PWNED"
    path = um.write_pickle_payload(tmp_path / "evil.pt", marker, **SMALL)
    globals_ = {arg for op, arg, _ in pickletools.genops(_pickle_of(path)) if op.name == "GLOBAL"}
    assert "io open" in globals_
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()
