"""Credentials in policy URIs reach no output: terminal, results files, report, junitxml, cache.

A private checkpoint is shared as `https://user:token@host/x.pt` or a presigned URL; the server
here requires that password (HTTP basic authentication, as `user:token@` means) and the URL
carries a signature. Nothing the run leaves behind may contain either.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from helpers import MINI_SUITE, make_checkpoint, write_suite
from servers import FileServer

from pytest_policyeval.redact import redact_text, redact_uri

PASSWORD = "s3cretT0ken"
SIGNATURE = "SIGVALUE123abc"
GIT_TOKEN = "gittoken9zz"


def test_redaction_masks_passwords_and_signing_parameters_only() -> None:
    assert redact_uri(f"https://ann:{PASSWORD}@host/m.pt") == "https://ann:***@host/m.pt"
    assert redact_uri(f"https://{PASSWORD}@host/m.pt") == "https://***@host/m.pt"
    presigned = f"https://b.s3.amazonaws.com/m.pt?X-Amz-Expires=60&X-Amz-Signature={SIGNATURE}"
    assert (
        redact_uri(presigned) == "https://b.s3.amazonaws.com/m.pt?X-Amz-Expires=60&X-Amz-Signature=%2A%2A%2A"
    )
    for plain in ("random://", "file://a/b.pt", "https://host/m.pt?version=3", "wandb://e/p/model/n:v1"):
        assert redact_uri(plain) == plain
    # A URI quoted before the message's colon keeps the colon; the secret goes.
    assert redact_text(f"https://h/x?X-Amz-Signature={SIGNATURE}: no such key") == (
        "https://h/x?X-Amz-Signature=%2A%2A%2A: no such key"
    )


@pytest.mark.parametrize(
    "name",
    ["private_token", "job_token", "api-key", "client_secret", "access-token", "Private-Token", "apiKey",
     "access_key", "passwd", "X-Amz-Security-Token", "x-goog-credential", "sig", "sv", "key", "auth"],
)  # fmt: skip
def test_token_parameters_of_any_spelling_are_masked(name: str) -> None:
    uri = f"https://gitlab.example/api/v4/nav.pt?ref=main&{name}={PASSWORD}"
    assert redact_uri(uri) == f"https://gitlab.example/api/v4/nav.pt?ref=main&{name}=%2A%2A%2A"
    assert PASSWORD not in redact_text(f"{uri} failed; its token {PASSWORD} was refused", [uri])


@pytest.mark.parametrize("name", ["ref", "version", "X-Amz-Expires", "deterministic", "keyword", "step"])
def test_other_parameters_are_kept(name: str) -> None:
    assert redact_uri(f"https://host/nav.pt?{name}=v1") == f"https://host/nav.pt?{name}=v1"


def test_a_private_url_works_and_its_secrets_reach_no_output(
    pytester: pytest.Pytester, http_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.files["/models/nav.pt"] = make_checkpoint(tmp_path / "nav.pt").read_bytes()
    http_server.authorization = "Basic " + base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
    host = http_server.url.split("://", 1)[1]
    uri = f"http://ann:{PASSWORD}@{host}/models/nav.pt?X-Amz-Signature={SIGNATURE}"
    missing = f"http://ann:{PASSWORD}@{host}/models/gone.pt?X-Amz-Signature={SIGNATURE}"
    monkeypatch.setenv("GIT_URL", f"https://bot:{GIT_TOKEN}@github.com/team/repo.git")
    suite = write_suite(pytester.path, MINI_SUITE)
    data = pytester.path / "cache"
    result = pytester.runpytest_subprocess(
        str(suite), "-p", "no:importnb", f"--policy-uri={uri}", f"--policy-uri={missing}",
        "--data-dir", str(data), "--eval-json=r.json", "--eval-yaml=r.yaml", "--junitxml=j.xml",
        "--html=report.html", "--self-contained-html",
    )  # fmt: skip
    document = json.loads((pytester.path / "r.json").read_text())
    loaded, lost = document["policies"]
    assert loaded["checkpoints"][0]["metrics"]["tasks"]["nav/easy"]["error"] is None  # the password worked
    assert "HTTP 404" in lost["checkpoints"][0]["metrics"]["tasks"]["nav/easy"]["error"]
    assert loaded["policy_uri"] == f"http://ann:***@{host}/models/nav.pt?X-Amz-Signature=%2A%2A%2A"
    outputs = {
        "terminal": result.stdout.str() + result.stderr.str(),
        **{name: (pytester.path / name).read_text() for name in ("r.json", "r.yaml", "j.xml", "report.html")},
        **{str(path): path.read_text() for path in data.rglob("*.json")},
    }
    assert "report.html" in outputs and any("refs" in name for name in outputs)
    for name, text in outputs.items():
        for secret in (PASSWORD, SIGNATURE, GIT_TOKEN):
            assert secret not in text, f"{secret} in {name}"


def test_a_malformed_url_with_an_at_sign_in_its_password_keeps_all_of_it_hidden() -> None:
    from pytest_policyeval.redact import redact_text, redact_uri

    uri = "postgres://u:p@ssw0rd@[::1/db"  # too malformed to parse (an unclosed IPv6 host)
    assert redact_uri(uri) == "postgres://u:***@[::1/db"
    assert "ssw0rd" not in redact_text(f"cannot open {uri}; password p@ssw0rd", [uri])
