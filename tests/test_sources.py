"""Remote policies: http(s):// through a real server on loopback, the download cache, schemes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers import MINI_SUITE, make_checkpoint, task_details, write_suite
from servers import FileServer

from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy, policy_label

# Four tasks, so that both of two xdist workers evaluate (and load) the policy.
FOUR_TASKS = """
name: fetch
seed: 5
defaults: {num_episodes: 2, max_steps: 10}
tasks:
  - {name: nav/a, map: maps/easy.map}
  - {name: nav/b, map: maps/easy.map}
  - {name: nav/c, map: maps/hard.map}
  - {name: nav/d, map: maps/hard.map}
"""


def _serve_checkpoint(server: FileServer, tmp: Path, path: str = "/models/nav.pt") -> bytes:
    body = make_checkpoint(tmp / "nav.pt").read_bytes()
    server.files[path] = body
    return body


def _run(pytester: pytest.Pytester, uri: str, data: Path, *args: str):
    return pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", uri, "--data-dir", str(data), "--eval-json", "r.json", *args
    )


def _sources(pytester: pytest.Pytester) -> list[dict]:
    document = json.loads((pytester.path / "r.json").read_text())
    return [c["policy_info"]["source"] for p in document["policies"] for c in p["checkpoints"]]


def test_a_run_with_two_workers_downloads_the_policy_once(
    pytester: pytest.Pytester, http_server: FileServer, tmp_path: Path
) -> None:
    body = _serve_checkpoint(http_server, tmp_path)
    write_suite(pytester.path, FOUR_TASKS)
    uri = f"{http_server.url}/models/nav.pt"
    result = _run(pytester, uri, tmp_path / "data", "-n", "2")
    result.assert_outcomes(passed=4)
    assert http_server.downloads("/models/nav.pt") == 1
    assert len(http_server.log) == 1  # the second worker read the run's record, not the server
    (source,) = _sources(pytester)
    assert source["digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert source["version"] == '"' + hashlib.md5(body).hexdigest() + '"'
    assert source["cached"] is False and source["offline"] is False
    assert Path(source["path"]).read_bytes() == body
    assert {label for _, label in task_details(pytester.path / "r.json")} == {"nav"}


def test_later_runs_revalidate_and_go_on_offline(
    pytester: pytest.Pytester, http_server: FileServer, tmp_path: Path
) -> None:
    body = _serve_checkpoint(http_server, tmp_path)
    write_suite(pytester.path, MINI_SUITE)
    uri, data = f"{http_server.url}/models/nav.pt", tmp_path / "data"
    _run(pytester, uri, data).assert_outcomes(passed=2)
    first = task_details(pytester.path / "r.json")

    _run(pytester, uri, data).assert_outcomes(passed=2)
    assert [status for *_, status in http_server.log] == [200, 304]  # unchanged: no second download
    assert _sources(pytester)[0]["cached"] is True

    http_server.close()
    _run(pytester, uri, data).assert_outcomes(passed=2)
    (source,) = _sources(pytester)
    assert source["offline"] is True and source["digest"] == "sha256:" + hashlib.sha256(body).hexdigest()
    offline = task_details(pytester.path / "r.json")
    for key, detail in first.items():
        assert offline[key]["episode_rewards"] == detail["episode_rewards"]


def test_a_changed_file_is_downloaded_again(
    pytester: pytest.Pytester, http_server: FileServer, tmp_path: Path
) -> None:
    write_suite(pytester.path, MINI_SUITE)
    uri, data = f"{http_server.url}/nav.pt", tmp_path / "data"
    http_server.files["/nav.pt"] = make_checkpoint(tmp_path / "a.pt", seed=1).read_bytes()
    _run(pytester, uri, data)
    old = _sources(pytester)[0]["digest"]
    http_server.files["/nav.pt"] = make_checkpoint(tmp_path / "b.pt", seed=2).read_bytes()
    _run(pytester, uri, data)
    assert http_server.downloads("/nav.pt") == 2
    assert _sources(pytester)[0]["digest"] not in (old, None)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.pt", "the server answered HTTP 404"),
        ("/short.pt", "download cut short"),
    ],
)
def test_download_failures_are_one_message_and_keep_nothing(
    http_server: FileServer, tmp_path: Path, path: str, message: str
) -> None:
    http_server.files["/short.pt"] = b"x" * 4096
    http_server.cut_short.add("/short.pt")
    data = tmp_path / "data"
    with pytest.raises(PolicyLoadError, match=message) as error:
        load_policy(http_server.url + path, LoadOptions(data_dir=data))
    assert http_server.url + path in str(error.value)
    assert not list(data.glob("blobs/*/*")) and not list(data.glob("incoming/*"))


def test_an_unreachable_server_without_a_cached_copy(
    pytester: pytest.Pytester, http_server: FileServer, tmp_path: Path
) -> None:
    uri = f"{http_server.url}/nav.pt"
    http_server.close()
    write_suite(pytester.path, MINI_SUITE)
    result = _run(pytester, uri, tmp_path / "data", "-n", "2")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"*{uri}: cannot download (*) and there is no cached copy*"])
    errors = {d["error"] for d in task_details(pytester.path / "r.json").values()}
    assert len(errors) == 1 and "no cached copy" in errors.pop()


def test_a_metta_state_dict_downloads_as_a_pytorch_policy(http_server: FileServer, tmp_path: Path) -> None:
    from test_metta_policies import save_metta

    http_server.files["/metta/agent.pt"] = save_metta(tmp_path / "agent.pt").read_bytes()
    policy = load_policy(f"{http_server.url}/metta/agent.pt", LoadOptions(data_dir=tmp_path / "data"))
    assert policy.describe()["kind"] == "metta-external"
    assert policy.name == "agent"


def test_labels_of_remote_uris() -> None:
    assert policy_label("https://models.example/runs/7/nav.pt?token=x") == "nav"
    assert policy_label("s3://bucket/team/agent.pth") == "agent"
    assert policy_label("wandb://team/proj/model/nav-run:v3") == "nav-run:v3"
    assert policy_label("scripted://navigator") == "navigator"


def test_unknown_schemes_list_every_known_one() -> None:
    with pytest.raises(PolicyLoadError, match=r"unknown policy URI scheme 'ftp://'.*'http', 'https'"):
        load_policy("ftp://host/x.pt")


PLUGIN_SCHEME = """
import pytest
from pytest_policyeval.policies.random_policy import RandomPolicy

def load(uri, rest, options):
    policy = RandomPolicy(uri)
    policy.name = "zoo-" + rest
    policy.info["zoo"] = rest
    return policy

@pytest.hookimpl
def pytest_policyeval_policy_schemes():
    return {"zoo": "zoo_scheme:load"}
"""


def test_a_scheme_from_an_installed_package_entry_point(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = pytester.mkdir("site")
    (site / "zoo_scheme.py").write_text(PLUGIN_SCHEME)
    dist = site / "zoo_scheme-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-scheme\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest_policyeval]\nzoo = zoo_scheme\n")
    write_suite(pytester.path, MINI_SUITE)
    monkeypatch.setenv("PYTHONPATH", str(site))
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "zoo://lion", "--eval-json", "r.json"
    )
    result.assert_outcomes(passed=2)
    document = json.loads((pytester.path / "r.json").read_text())
    assert document["policies"][0]["checkpoints"][0]["policy_info"]["zoo"] == "lion"


# Registers zoo:// from a conftest and logs the process id of every load.
COUNTING_CONFTEST = """
import os

import pytest

def load(uri, rest, options):
    from pytest_policyeval.policies.random_policy import RandomPolicy

    with open("loads.log", "a") as log:
        log.write(f"{os.getpid()}\\n")
    return RandomPolicy(uri)

@pytest.hookimpl
def pytest_policyeval_policy_schemes():
    return {"zoo": load}
"""


def test_a_conftest_scheme_loads_once_per_worker_never_per_task(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(COUNTING_CONFTEST)
    write_suite(pytester.path, FOUR_TASKS)
    result = pytester.runpytest_subprocess("-p", "no:importnb", "-n", "2", "--policy-uri", "zoo://owl")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*policy owl (zoo://owl)*"])
    loads = (pytester.path / "loads.log").read_text().split()
    assert len(loads) == len(set(loads)) == 2  # one load in each worker, for four tasks


def test_a_download_has_a_total_deadline_and_a_size_cap(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from pytest_policyeval.policies import LoadOptions, PolicyLoadError, load_policy
    from pytest_policyeval.policies.sources import cache as cache_module

    body = _serve_checkpoint(http_server, tmp_path)
    http_server.files["/slow.pt"] = body
    http_server.drip.add("/slow.pt")  # a byte every 0.2 s: each read is quick, the whole is not
    monkeypatch.setattr(cache_module, "DOWNLOAD_DEADLINE_S", 1.0)
    options = LoadOptions(data_dir=tmp_path / "data")
    start = time.monotonic()
    with pytest.raises(PolicyLoadError, match=r"took longer than 1 s .*POLICYEVAL_DOWNLOAD_DEADLINE_S"):
        load_policy(f"{http_server.url}/slow.pt", options)
    assert time.monotonic() - start < 10
    monkeypatch.setattr(cache_module, "DOWNLOAD_DEADLINE_S", 60.0)
    monkeypatch.setattr(cache_module, "MAX_DOWNLOAD_BYTES", len(body) - 1)
    with pytest.raises(PolicyLoadError, match=r"announces \d+ bytes, more than .*nothing was downloaded"):
        load_policy(f"{http_server.url}/models/nav.pt", options)
    # A body larger than it says (or with no length) is cut off at the cap as it streams.
    pieces = cache_module.bounded(iter([b"x" * 10] * 5), "http://h/x.pt", max_bytes=25)
    with pytest.raises(Exception, match="larger than 25 bytes"):
        list(pieces)
    assert (
        not list((tmp_path / "data" / "blobs").glob("*/*"))
        if (tmp_path / "data" / "blobs").exists()
        else True
    )


def test_a_stable_baselines3_zip_downloads_and_is_read_by_its_content(
    http_server: FileServer, tmp_path: Path
) -> None:
    from pytest_policyeval.policies import LoadOptions, load_policy

    model = Path(__file__).resolve().parents[1] / "examples/policies/cartpole_ppo.zip"
    http_server.files["/models/cartpole_ppo.zip"] = model.read_bytes()
    policy = load_policy(f"{http_server.url}/models/cartpole_ppo.zip", LoadOptions(data_dir=tmp_path / "d"))
    facts = policy.describe()
    assert facts["kind"] == "sb3" and facts["algorithm"] == "PPO"
    assert (
        facts["source"]["digest"]
        == facts["digest"]
        == "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest()
    )
    assert policy_label(f"{http_server.url}/models/cartpole_ppo.zip") == "cartpole_ppo"


class _RawServer:
    """A loopback socket that answers every connection with these bytes, HTTP or not."""

    def __init__(self, answer: bytes):
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",  # not HTTP at all
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxx",
        "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\nxx".encode(),  # '²'.isdigit() is true
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n",
    ],
)
def test_a_server_that_does_not_speak_http_properly_is_one_error_naming_the_uri(
    answer: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(tmp_path))
    server = _RawServer(answer)
    uri = f"http://127.0.0.1:{server.port}/models/nav.pt"
    try:
        with pytest.raises(PolicyLoadError) as error:
            load_policy(uri)
    finally:
        server.close()
    message = str(error.value)
    assert message.startswith(uri) and "\n" not in message, message


@pytest.mark.parametrize("uri", ["http://127.0.0.1:abc/x.pt", "http://[::1/x.pt", "http://u:p@[::1/x.pt"])
def test_a_url_that_does_not_parse_is_one_error(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYEVAL_DATA_DIR", str(tmp_path))
    with pytest.raises(PolicyLoadError) as error:
        load_policy(uri)
    assert "\n" not in str(error.value)  # (passwords are redacted where results leave the process)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # a cloud's metadata address
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:10.0.0.1", False),  # IPv4-mapped: reaches 10.0.0.1
        ("::ffff:93.184.215.14", True),
    ],
)
def test_which_addresses_count_as_public(address: str, public: bool) -> None:
    from pytest_policyeval.policies.sources.public_only import is_public

    assert is_public(address) is public


def test_public_only_refuses_a_private_host_and_keeps_its_cached_copy_out(
    http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve_checkpoint(http_server, tmp_path)
    data = tmp_path / "data"
    for host in ("127.0.0.1", "localhost"):
        uri = http_server.url.replace("127.0.0.1", host) + "/models/nav.pt"
        load_policy(uri, LoadOptions(data_dir=data))  # allowed by default, and now cached
        monkeypatch.setenv("POLICYEVAL_HTTP_PUBLIC_ONLY", "1")
        with pytest.raises(PolicyLoadError) as error:
            load_policy(uri, LoadOptions(data_dir=data))
        message = str(error.value)
        assert message.startswith(f"{uri}: refused (") and "is not a public address" in message
        assert "POLICYEVAL_HTTP_PUBLIC_ONLY" in message and "\n" not in message
        monkeypatch.setenv("POLICYEVAL_HTTP_PUBLIC_ONLY", "0")
        load_policy(uri, LoadOptions(data_dir=data))
        monkeypatch.delenv("POLICYEVAL_HTTP_PUBLIC_ONLY")
    # Per host name: a download, then a revalidation once allowed again; a refusal never connects.
    assert [status for *_, status in http_server.log] == [200, 304, 200, 304]


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:9/x.pt", "http://127.0.0.1:9/x.pt"])
def test_public_only_follows_no_redirect_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """A public server's redirect may point inside: to a private address over http, or over ftp,
    whose connections the guard would not see. Here 127.0.0.2 stands in for the public server."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pytest_policyeval.policies.sources import public_only

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(public_only, "is_public", lambda address: address == "127.0.0.2")
        monkeypatch.setenv("POLICYEVAL_HTTP_PUBLIC_ONLY", "1")
        uri = f"http://127.0.0.2:{server.server_address[1]}/nav.pt"
        with pytest.raises(PolicyLoadError) as error:
            load_policy(uri, LoadOptions(data_dir=tmp_path / "data"))
        assert f"{uri}: refused (" in str(error.value)
    finally:
        server.shutdown()
        server.server_close()
