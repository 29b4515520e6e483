"""Deliveries as their senders make them: GitHub-style signatures (HMAC-SHA256 of the raw body in
`X-Hub-Signature-256`) and W&B Automation payloads (a JSON template of W&B's variables, sent with
a bearer token). Checks happen on the raw bytes before any parsing."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from pytest_policyeval.serve.webhooks import Refused, bearer_ok, generic_delivery, wandb_delivery

SECRET = "webhook-secret"


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wandb_body(**changes: object) -> bytes:
    """A W&B Automation template filled in as W&B fills it (its ${...} variables)."""
    payload = {
        "event_type": "ADD_ARTIFACT_ALIAS",
        "event_author": "alice",
        "artifact_version": "wandb-artifact://_id/QXJ0aWZhY3Q6MTIz",
        "artifact_version_string": "team/nav/policy:v7",
        "artifact_collection_name": "policy",
        "project_name": "nav",
        "entity_name": "team",
        "alias": "candidate",
        "suites": ["navigation"],
    }
    payload.update(changes)
    return json.dumps(payload).encode()


def test_a_signed_delivery_is_an_evaluation_keyed_by_its_signed_body() -> None:
    body = json.dumps({"policy_uri": "s3://bucket/nav.pt", "suites": ["navigation", "laser_tag"]}).encode()
    request, key = generic_delivery(body, signed(body), "72d3162e-cc78-11e3-81ab-4c9367dc0958", SECRET)
    assert request.policy_uri == "s3://bucket/nav.pt" and request.suites == ("navigation", "laser_tag")
    # The delivery id is not signed: a captured body replayed under new ids is the same evaluation.
    assert generic_delivery(body, signed(body), "replayed-1", SECRET)[1] == key
    other = json.dumps({"policy_uri": "s3://bucket/nav.pt", "suites": ["laser_tag"]}).encode()
    assert generic_delivery(other, signed(other), "72d3162e-cc78-11e3-81ab-4c9367dc0958", SECRET)[1] != key


def test_a_signed_delivery_takes_the_service_defaults_for_what_it_does_not_say() -> None:
    defaults = {
        "suites": ["laser_tag"],
        "output_uri": "s3://results/nightly",
        "baseline_uri": "s3://b/best.pt",
    }
    bare = b'{"policy_uri": "s3://bucket/nav.pt", "baseline_uri": null}'
    request, _ = generic_delivery(bare, signed(bare), "d1", SECRET, defaults)
    assert (request.suites, request.output_uri, request.baseline_uri) == (
        ("laser_tag",), "s3://results/nightly", "s3://b/best.pt"
    )  # fmt: skip
    given = b'{"policy_uri": "s3://bucket/nav.pt", "suites": ["navigation"], "output_uri": "s3://mine"}'
    request, _ = generic_delivery(given, signed(given), "d2", SECRET, defaults)
    assert (request.suites, request.output_uri) == (("navigation",), "s3://mine")  # the payload wins


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha1=abc",
        "sha256=" + "0" * 64,
        signed(b"{}"),
        signed(b'{"policy_uri": "random://"}', "other"),
    ],
)
def test_a_badly_signed_delivery_is_refused_before_its_body_is_read(signature: str | None) -> None:
    body = b'{"policy_uri": "random://"}'
    with pytest.raises(Refused) as refused:
        generic_delivery(body, signature, "d1", SECRET)
    assert refused.value.status == 401


def test_a_signed_but_unusable_delivery_says_what_is_wrong() -> None:
    cases = [
        (b"not json", "d1", 422, "not JSON"),
        (b"[1, 2]", "d1", 422, "a JSON object"),
        (b'{"policy_uri": "random://", "suites": ["../../etc"]}', "d1", 422, "not a suite name"),
        (b'{"policy_uri": "random://\\n"}', "d1", 422, "control characters"),
        (b'{"policy_uri": "random://", "shell": "rm -rf /"}', "d1", 422, "shell"),
        (b'{"policy_uri": "random://"}', None, 422, "X-GitHub-Delivery"),
        (b'{"policy_uri": "random://"}', "../x", 422, "X-GitHub-Delivery"),
        (b'{"policy_uri": "' + b"x" * 70_000 + b'"}', "d1", 413, "at most"),
    ]
    for body, delivery, status, words in cases:
        with pytest.raises(Refused) as refused:
            generic_delivery(body, signed(body), delivery, SECRET)
        assert (refused.value.status, words in str(refused.value)) == (status, True), (
            body[:40],
            refused.value,
        )


def test_a_wandb_delivery_evaluates_exactly_the_artifact_version_it_names() -> None:
    request, key = wandb_delivery(wandb_body(), {"num_episodes": 50})
    assert request.policy_uri == "wandb://team/nav/model/policy:v7"
    assert request.suites == ("navigation",) and request.num_episodes == 50
    # W&B redelivers: the same event
    _, same_key = wandb_delivery(wandb_body(event_author="bob"), {"num_episodes": 50})
    assert same_key == key
    assert wandb_delivery(wandb_body(alias="production"), {})[1] != key
    assert wandb_delivery(wandb_body(artifact_version_string="team/nav/policy:v8"), {})[1] != key
    typed, _ = wandb_delivery(wandb_body(artifact_type="checkpoint"), {})
    assert typed.policy_uri == "wandb://team/nav/checkpoint/policy:v7"


def test_two_wandb_automations_on_one_event_asking_for_different_evaluations_get_two() -> None:
    navigation, key = wandb_delivery(wandb_body(), {})
    laser_tag, other_key = wandb_delivery(wandb_body(suites=["laser_tag"]), {})
    assert (navigation.suites, laser_tag.suites) == (("navigation",), ("laser_tag",))
    assert other_key != key
    assert wandb_delivery(wandb_body(num_episodes=20), {})[1] != key


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"event_type": "DELETE_RUN"}, "event_type"),
        ({"artifact_version_string": "team/nav/policy:latest"}, "ENTITY/PROJECT/NAME:vN"),
        ({"artifact_version_string": "team/../policy:v1"}, "ENTITY/PROJECT/NAME:vN"),
        ({"artifact_type": "model/../x"}, "artifact_type"),
        ({"suites": ["/etc/passwd"]}, "suites"),
    ],
)
def test_a_wandb_delivery_that_names_no_artifact_version_is_refused(changes: dict, words: str) -> None:
    with pytest.raises(Refused) as refused:
        wandb_delivery(wandb_body(**changes), {})
    assert refused.value.status == 422 and words in str(refused.value)


def test_bearer_tokens() -> None:
    tokens = ("t0k3n-a", "t0k3n-b")
    assert bearer_ok("Bearer t0k3n-b", tokens) and bearer_ok("Bearer t0k3n-a ", tokens)
    for header in (None, "", "t0k3n-a", "Bearer ", "Bearer t0k3n-c", "Basic dDBrM24tYQ=="):
        assert not bearer_ok(header, tokens)
    assert not bearer_ok("Bearer anything", ())
