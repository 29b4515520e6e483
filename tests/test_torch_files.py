"""Reading torch files others wrote: crafted zips and pickles get one message, in bounded time and memory.

Each file starts as a real `torch.save` archive; only the part under test is rewritten.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
import torch
import upstream_metta as upstream

from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy


def _records(obj: object) -> list[tuple[str, bytes]]:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


def _write(path: Path, records: list[tuple[str, bytes]], compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compress) as archive:
        for name, data in records:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compress)
    return path


def _refused(path: Path, match: str) -> None:
    start = time.perf_counter()
    with pytest.raises(PolicyLoadError, match=match) as error:
        load_policy(f"pytorch://{path}")
    assert time.perf_counter() - start < 5
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
    assert len(str(error.value)) < 600


def test_a_deeply_nested_pickle_is_refused_before_it_can_crash_the_interpreter(tmp_path: Path) -> None:
    # A tuple nested 200,000 deep, used as a dict key: hashing it overflows the C stack.
    deep = b"\x80\x02}N" + b"\x85" * 200_000 + b"Ns."
    records = [
        (name, deep if name.endswith("data.pkl") else data) for name, data in _records({"x": torch.zeros(4)})
    ]
    _refused(_write(tmp_path / "deep.pt", records), "nests more than 100 levels deep")


def test_an_entry_torch_would_read_instead_of_the_scanned_one_is_refused(tmp_path: Path) -> None:
    records = _records({"x": torch.zeros(4)})
    prefix = records[0][0].split("/")[0]
    other = next(data for name, data in _records({"y": torch.zeros(2)}) if name.endswith("data.pkl"))
    _refused(_write(tmp_path / "case.pt", [(f"{prefix}/DATA.PKL", other), *records]), "repeats an entry name")


def test_compressed_entries_are_refused_no_decompression_bombs(tmp_path: Path) -> None:
    records = _records(upstream.upstream_state_dict(cnn_channels=32, hidden_size=128))
    _refused(_write(tmp_path / "zipped.pt", records, zipfile.ZIP_DEFLATED), "is compressed or encrypted")


def test_the_legacy_format_and_foreign_files_say_what_they_are(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pt"
    torch.save(
        upstream.upstream_state_dict(cnn_channels=32, hidden_size=128),
        legacy,
        _use_new_zipfile_serialization=False,
    )
    _refused(legacy, "format before torch 1.6; load it with torch and save it again")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    _refused(text, r"not a PyTorch checkpoint \(torch.save's zip format\); it starts with b'hello'")


def test_a_tensor_reaching_past_its_storage_is_named_briefly(tmp_path: Path) -> None:
    records = _records({"x": torch.zeros(4)})
    pickle_bytes = next(data for name, data in records if name.endswith("data.pkl"))
    # The tensor's size (4,) becomes (5,): one element past its 4-element storage.
    patched = pickle_bytes.replace(b"K\x04\x85", b"K\x05\x85", 1)
    assert patched != pickle_bytes
    forged = [(name, patched if name.endswith("data.pkl") else data) for name, data in records]
    _refused(
        _write(tmp_path / "past.pt", forged),
        r"a tensor of shape \(5,\) reaches element 5 of a 4-element storage",
    )


def test_small_tensors_that_describe_a_huge_network_are_refused_before_allocating_it(tmp_path: Path) -> None:
    state = upstream.upstream_state_dict(cnn_channels=32, hidden_size=128)
    hidden = 32768  # a 17 GB LSTM if it were built
    for key in ("lstm.weight_ih_l0", "cell.weight_ih"):
        state[key] = torch.zeros(1, 128)  # the policy encodes 128 values
    for key in ("lstm.weight_hh_l0", "cell.weight_hh"):
        state[key] = torch.zeros(1, hidden)
    for key in ("policy.actor.0.weight", "policy.actor.1.weight", "policy.value.weight"):
        state[key] = torch.zeros(state[key].shape[0], hidden)
    path = tmp_path / "amp.pt"
    torch.save(state, path)
    _refused(
        path,
        r"'lstm.weight_ih_l0' has shape \(1, 128\) in the checkpoint but the architecture "
        r"expects \(131072, 128\)",
    )


def test_harmless_extras_that_torch_accepts_do_not_refuse_a_wrapped_state_dict(tmp_path: Path) -> None:
    state = upstream.upstream_state_dict(cnn_channels=32, hidden_size=128)
    path = tmp_path / "extras.pt"
    extras = {
        "shape": torch.Size([2, 3]),
        "dtype": torch.float32,
        "device": torch.device("cpu"),
        "tags": {"a"},
    }
    torch.save({"state_dict": state, "epoch": 3, **extras}, path)
    assert load_policy(f"pytorch://{path}").describe()["layout"] == "puffer3"


def test_a_config_alias_bomb_is_walked_once(tmp_path: Path) -> None:
    path = upstream.write_upstream(tmp_path / "p.pt", cnn_channels=32, hidden_size=128)
    lines = ["_target_: metta.agent.external.example.Recurrent", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghij":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 10)}]")
    config = tmp_path / "laughs.yaml"
    config.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(PolicyLoadError, match=r"unknown Policy keys \['a', 'b', 'c', 'd', 'e'\]"):
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("strides: [0, 1]", r"'strides' must be a list of 2 integers from 1 to 15, got \[0, 1\]"),
        ("hidden_size: 1000000", "'hidden_size' must be an integer from 1 to 65536"),
        ("window: 701", "'window' must be an integer from 1 to 15"),
        ("action_heads: [-1, 10]", "'action_heads' must be a list of 1 or 2 from 1 to 4096"),
        ("cnn_channels: true", "'cnn_channels' must be an integer or a list of 2"),
    ],
)
def test_config_sizes_are_checked_before_anything_is_built(tmp_path: Path, line: str, message: str) -> None:
    path = upstream.write_upstream(tmp_path / "p.pt", cnn_channels=32, hidden_size=128)
    config = tmp_path / "c.yaml"
    config.write_text(f"_target_: metta.agent.external.example.Recurrent\n{line}\n")
    with pytest.raises(PolicyLoadError, match=message):
        load_policy(f"pytorch://{path}", LoadOptions(pytorch_config=config))


def test_a_view_repeating_a_tiny_storage_counts_at_its_loaded_size(tmp_path: Path) -> None:
    # 2 bytes stored, 2**36 elements once copied: the weights check's float() would allocate 256 GB.
    path = tmp_path / "expanded.pt"
    torch.save({"junk": torch.zeros(1, dtype=torch.float16).expand(1 << 36)}, path)
    assert path.stat().st_size < 10_000
    _refused(path, r"its tensors stand for 256.0 GB once loaded \(views repeating a small storage\)")


def _encode_call(text: str, encoding: str) -> bytes:
    """A protocol-2 pickle of `_codecs.encode(text, encoding)`, as torch writes bytes."""
    t, e = text.encode("utf-8"), encoding.encode()
    return (
        b"\x80\x02c_codecs\nencode\nX" + len(t).to_bytes(4, "little") + t
        + b"X" + len(e).to_bytes(4, "little") + e + b"\x86R."
    )  # fmt: skip


@pytest.mark.parametrize(
    "encoding, why",
    [
        ("punycode", "'punycode', which this loader does not accept"),  # quadratic in the text
        ("zlib_c", "'zlib_c', which this loader does not accept"),  # a LookupError on the way
    ],
)
def test_bytes_are_decoded_only_as_torch_writes_them(tmp_path: Path, encoding: str, why: str) -> None:
    text = "".join(chr(0x100 + i) for i in range(20_000))
    records = [
        (name, _encode_call(text, encoding) if name.endswith("data.pkl") else data)
        for name, data in _records({"a": torch.zeros(2)})
        if not name.endswith("data/0")
    ]
    _refused(_write(tmp_path / f"{encoding}.pt", records), why)


def test_bytes_in_front_of_the_archive_are_refused(tmp_path: Path) -> None:
    # Python's zipfile shifts every offset past such bytes; torch's reader does not, so the two
    # could read different archives from one file: the checks must see what torch loads.
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(4)}, buffer)
    path = tmp_path / "prefixed.pt"
    path.write_bytes(b"\0" * 100 + buffer.getvalue())
    _refused(path, "refused: 100 bytes precede its zip archive")


def test_a_truncated_model_showing_the_archive_stored_inside_it_is_refused(tmp_path: Path) -> None:
    # Cut short after its policy.pth, an SB3 model's last directory is that torch.save file's: Python
    # reads it from the middle of the file, torch from the start.
    model = Path(__file__).resolve().parents[1] / "examples/policies/cartpole_ppo.zip"
    with zipfile.ZipFile(model) as archive:
        info = archive.getinfo("policy.pth")
        with archive.open(info) as handle:
            inner = handle.read()
    data = model.read_bytes()
    end = data.index(inner) + len(inner)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:end])
    with zipfile.ZipFile(cut) as archive:  # the premise: Python sees the inner archive
        assert any(name.endswith("data.pkl") for name in archive.namelist())
    _refused(cut, "bytes precede its zip archive")


def test_a_pickle_naming_a_lazy_torch_attribute_is_refused_without_importing_it(tmp_path: Path) -> None:
    # torch's module __getattr__ imports torch._inductor (hundreds of modules) when asked for it: the
    # scan must refuse the name from torch's namespace as it stands, importing and calling nothing.
    import subprocess
    import sys

    records = _records({"x": torch.zeros(4)})
    naming = b"\x80\x02ctorch\n_inductor\n."
    path = _write(tmp_path / "lazy.pt", [(n, naming if n.endswith("data.pkl") else d) for n, d in records])
    script = (
        "import sys, torch\n"
        "from pytest_policyeval.policies import load_policy\n"
        f"try: load_policy('pytorch://{path}')\n"
        "except Exception as e: print(type(e).__name__, e)\n"
        "print('imported', 'torch._inductor' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    assert "PolicyLoadError" in out and "torch._inductor, which this loader does not accept" in out
    assert "imported False" in out


def test_a_checkpoint_cut_short_says_so(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(1000)}, buffer)
    path = tmp_path / "cut.pt"
    path.write_bytes(buffer.getvalue()[:2000])
    _refused(path, "a zip file cut short or damaged")
