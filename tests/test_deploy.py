"""The deployment examples under deploy/ name options and commands that exist, consistently."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_policyeval.cli import parser as cli_parser

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pytest_options() -> set[str]:
    """Every option `pytest --help` lists with this plugin (and pytest-html) installed."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:importnb", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(re.findall(r"(--[a-z][a-z-]+)", done.stdout))


def _flags(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", command))


def test_github_actions_matrix_runs_every_shard_then_merges(pytest_options: set[str]) -> None:
    workflow = yaml.safe_load((REPO / "deploy/github-actions/policyeval-shards.yml").read_text())
    jobs = workflow["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(int(workflow["env"]["NUM_SHARDS"])))
    run = next(step["run"] for step in jobs["shard"]["steps"] if step.get("name") == "Evaluate this shard")
    assert "--shard-id ${{ matrix.shard }}" in run and '--num-shards "$NUM_SHARDS"' in run
    assert _flags(run) <= pytest_options
    assert jobs["merge"]["needs"] == "shard"
    merge = next(step["run"] for step in jobs["merge"]["steps"] if step.get("name") == "Merge and gate")
    args = merge.split()
    assert args[:2] == ["policyeval", "merge"]
    # The merge command line parses with the real CLI.
    parsed = cli_parser().parse_args([a for a in args[1:] if a != "\\"])
    assert parsed.command == "merge" and str(parsed.eval_json) == "results/results.json"


def test_kubernetes_indexed_job_has_one_pod_per_shard_and_a_merge_job(pytest_options: set[str]) -> None:
    documents = list(yaml.safe_load_all((REPO / "deploy/kubernetes/policyeval-shards.yaml").read_text()))
    (job,) = [doc for doc in documents if doc["kind"] == "Job"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"]
    # One shard's failures are its own: retried per index, never failing the other shards.
    assert spec["backoffLimitPerIndex"] >= 1 and "backoffLimit" not in spec and "maxFailedIndexes" not in spec
    env = {item["name"]: item["value"] for item in spec["template"]["spec"]["containers"][0]["env"]}
    mounts = spec["template"]["spec"]["containers"][0]["volumeMounts"]
    assert any(env["POLICYEVAL_DATA_DIR"].startswith(mount["mountPath"] + "/") for mount in mounts)
    (container,) = spec["template"]["spec"]["containers"]
    command = " ".join(container["args"])
    assert f"--num-shards {spec['completions']}" in command
    assert '--shard-id "$JOB_COMPLETION_INDEX"' in command
    assert _flags(command) <= pytest_options
    claim = next(doc for doc in documents if doc["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    merge_job = yaml.safe_load((REPO / "deploy/kubernetes/policyeval-merge.yaml").read_text())
    assert merge_job["kind"] == "Job"
    volumes = merge_job["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["persistentVolumeClaim"]["claimName"] == claim
    (merge,) = merge_job["spec"]["template"]["spec"]["containers"]
    args = " ".join(merge["args"]).split()
    parsed = cli_parser().parse_args(args[1:])
    assert args[0] == "policyeval" and parsed.command == "merge"
    assert [str(path) for path in parsed.shards] == ["/results/shard-*.json"]


def _dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined), from the repository's Dockerfile."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM \S+ AS (\w+)$", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = [line]
        elif current is not None:
            stages[current].append(line)
    return stages


def test_dockerfile_targets_entrypoint_and_files_exist() -> None:
    import importlib.util
    import json
    import tomllib

    from pytest_policyeval import service
    from pytest_policyeval.cli import SUITES_DIR_VAR

    stages = _dockerfile_stages()
    assert {"base", "production", "development"} <= set(stages)
    production = stages["production"]
    assert production[0].startswith("FROM base")
    (entrypoint,) = [line for line in production if line.startswith("ENTRYPOINT")]
    command = json.loads(entrypoint.removeprefix("ENTRYPOINT"))
    assert command[:2] == ["python", "-m"]
    spec = importlib.util.find_spec(command[2])
    assert spec is not None and command[2] == service.__name__ and callable(service.main)
    for line in production + stages["development"]:
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert source == "." or (REPO / source).exists(), f"Dockerfile copies a missing {source}"
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for line in production + stages["development"]:
        for named in re.findall(r'"\.\[([\w,]+)\]"', line):
            assert set(named.split(",")) <= extras
    base_env = " ".join(stages["base"])
    assert f"{SUITES_DIR_VAR}=/app/suites" in base_env
    assert any('"torch==2.13.0"' in line for line in stages["base"])


def _env_names(container: dict) -> set[str]:
    return {item["name"] for item in container.get("env", [])}


KNOWN_EXTRA = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_kubernetes_job_runs_the_one_shot_service_with_its_variables() -> None:
    from pytest_policyeval.service import VARIABLES

    job = yaml.safe_load((REPO / "deploy/kubernetes/policyeval-job.yaml").read_text())
    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    names = _env_names(container)
    assert "POLICY_URI" in names and names <= set(VARIABLES)
    assert pod["restartPolicy"] == "Never"
    assert "command" not in container  # the image's entrypoint: the service
    assert job["spec"]["backoffLimit"] == 0


def _serve_documents() -> dict[str, dict]:
    documents = yaml.safe_load_all((REPO / "deploy/kubernetes/policyeval-serve.yaml").read_text())
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


SERVE_VARIABLES = {
    "POLICYEVAL_DATABASE_URL", "POLICYEVAL_API_TOKENS", "POLICYEVAL_WANDB_TOKEN", "POLICYEVAL_WEBHOOK_SECRET",
    "POLICYEVAL_DEFAULT_SUITES", "POLICYEVAL_DEFAULT_OUTPUT_URI", "POLICYEVAL_DEFAULT_BASELINE_URI",
    "POLICYEVAL_REPORTS_DIR", "POLICYEVAL_DATA_DIR", "POLICYEVAL_ALLOWED_SCHEMES",
    "POLICYEVAL_HTTP_PUBLIC_ONLY",
}  # fmt: skip
READ_BELOW_SERVE = {"POLICYEVAL_DATA_DIR", "POLICYEVAL_HTTP_PUBLIC_ONLY"}  # by the policy sources


def test_serve_settings_read_exactly_the_variables_the_manifests_set() -> None:
    import re as regex

    from pytest_policyeval.serve import settings

    source = (REPO / "pytest_policyeval/serve/settings.py").read_text()
    read = set(regex.findall(r'"(POLICYEVAL_[A-Z_]+)"', source))
    assert read | READ_BELOW_SERVE == SERVE_VARIABLES
    assert settings.DATABASE_VAR in read
    from pytest_policyeval.policies.sources import cache, public_only

    assert {cache.ENV_VAR, public_only.PUBLIC_ONLY_VAR} == READ_BELOW_SERVE


def test_kubernetes_service_runs_the_api_and_gpu_workers_with_real_commands() -> None:
    from pytest_policyeval.policies.sources import public_only
    from pytest_policyeval.serve.api import create_app
    from pytest_policyeval.serve.settings import ServeSettings

    docs = _serve_documents()
    secret = docs["Secret/policyeval-serve"]
    assert set(secret["stringData"]) <= SERVE_VARIABLES
    api = docs["Deployment/policyeval-api"]["spec"]["template"]["spec"]
    worker = docs["Deployment/policyeval-worker"]["spec"]["template"]["spec"]
    (api_container,) = api["containers"]
    (worker_container,) = worker["containers"]
    for container in (api_container, worker_container):
        command = container["command"]
        assert command[0] == "policyeval"
        assert cli_parser().parse_args(command[1:]).command in ("serve", "worker")
        assert container["envFrom"][0]["secretRef"]["name"] == "policyeval-serve"
        assert _env_names(container) <= SERVE_VARIABLES
    assert "--no-worker" in api_container["command"]  # the workers are their own Deployment
    app = create_app(ServeSettings(database_url="sqlite:///:memory:"))
    routes = {route.path for route in app.routes}
    for probe in ("livenessProbe", "readinessProbe"):
        assert api_container[probe]["httpGet"]["path"] in routes
        assert api_container[probe]["httpGet"]["port"] == api_container["ports"][0]["containerPort"]
    service = docs["Service/policyeval-api"]["spec"]
    assert service["selector"] == docs["Deployment/policyeval-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["ports"][0]["targetPort"] == api_container["ports"][0]["containerPort"]
    # Workers: a GPU each, a long grace for handing back, reports on the volume the API serves.
    args = cli_parser().parse_args(worker_container["command"][1:])
    # The workers fetch what requests name: never from inside the cluster.
    assert public_only.enabled({item["name"]: item["value"] for item in worker_container["env"]})
    assert worker_container["resources"]["limits"]["nvidia.com/gpu"] == "1" and args.device == "cuda"
    assert worker["terminationGracePeriodSeconds"] >= 30 and args.heartbeat < args.lease
    claim = "policyeval-reports"
    assert {
        v["persistentVolumeClaim"]["claimName"] for v in api["volumes"] if "persistentVolumeClaim" in v
    } == {claim}
    assert claim in {v.get("persistentVolumeClaim", {}).get("claimName") for v in worker["volumes"]}
    assert any(m["mountPath"] == "/reports" and m.get("readOnly") for m in api_container["volumeMounts"])


def test_the_cronjob_asks_the_service_once_a_night() -> None:
    import re as regex

    from pytest_policyeval.serve.requests import EvaluationRequest

    cron = yaml.safe_load((REPO / "deploy/kubernetes/policyeval-cronjob.yaml").read_text())
    assert cron["kind"] == "CronJob" and len(cron["spec"]["schedule"].split()) == 5
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    script = container["args"][0]
    env = {item["name"]: item for item in container["env"]}
    assert '-X POST "$POLICYEVAL_URL/evaluations"' in script
    assert env["POLICYEVAL_URL"]["value"] == "http://policyeval-api"  # the Service's name
    token = env["POLICYEVAL_API_TOKENS"]["valueFrom"]["secretKeyRef"]
    assert token["key"] in _serve_documents()[f"Secret/{token['name']}"]["stringData"]
    assert '-H "Idempotency-Key: nightly-$(date +%Y-%m-%d)"' in script
    # The JSON body, as the shell leaves it, is a valid evaluation request.
    body = regex.search(r'-d "(.*)"$', script, regex.S).group(1).replace('\\"', '"')
    body = body.replace("$POLICY_URI", env["POLICY_URI"]["value"]).replace("$(date +%Y-%m-%d)", "2026-12-02")
    assert EvaluationRequest.model_validate_json(body).suites == ("full_eval",)


def test_compose_builds_the_dockerfile_targets_with_the_service_variables() -> None:
    from pytest_policyeval.service import VARIABLES

    compose = yaml.safe_load((REPO / "deploy/docker/docker-compose.yml").read_text())
    stages = _dockerfile_stages()
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
            assert (REPO / "deploy/docker" / service["build"]["context"] / "Dockerfile").is_file()
    evaluator = compose["services"]["evaluator"]
    assert set(evaluator["environment"]) <= set(VARIABLES) | KNOWN_EXTRA
    assert "POLICY_URI" in evaluator["environment"]
    # The long-running service: the API and a worker over the compose file's Postgres.
    for name in ("api", "worker"):
        service = compose["services"][name]
        assert cli_parser().parse_args(service["command"][1:]).command == (
            "serve" if name == "api" else "worker"
        )
        assert set(service["environment"]) <= SERVE_VARIABLES | {"WANDB_API_KEY"}
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        database = service["environment"]["POLICYEVAL_DATABASE_URL"]
        postgres = compose["services"]["postgres"]["environment"]
        assert database == (
            f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/"
            f"{postgres['POSTGRES_DB']}"
        )


def test_kuberay_rayjob_runs_the_suite_on_its_own_cluster_with_real_options(pytest_options: set[str]) -> None:
    import tomllib

    from pytest_policyeval.option_values import ray_resources

    job = yaml.safe_load((REPO / "deploy/kubernetes/policyeval-rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True  # an ephemeral cluster
    entrypoint = spec["entrypoint"]
    assert entrypoint.split()[0] == "pytest" and _flags(entrypoint) <= pytest_options
    assert "--eval-ray auto" in entrypoint  # KubeRay sets RAY_ADDRESS for the entrypoint
    assert '--eval-output-uri "$OUTPUT_URI"' in entrypoint and '--policy-uri "$POLICY_URI"' in entrypoint
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert {"POLICY_URI", "OUTPUT_URI"} <= set(env)
    # The Ray every node runs is the one the package pins.
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pinned,) = [req for req in extras["ray"] if req.startswith("ray")]
    cluster = spec["rayClusterSpec"]
    assert pinned == f"ray=={cluster['rayVersion']}"
    # Every node runs the Dockerfile's ray stage, which installs the ray extra.
    ray_stage = " ".join(_dockerfile_stages()["ray"])
    assert re.search(r'pip install "\.\[[\w,]*\bray\b[\w,]*\]"', ray_stage) and "ENTRYPOINT" not in ray_stage
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert images == {"pytest-policyeval-ray:latest"}
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # tasks run on the workers
    # What each task asks for fits the GPU group's nodes, as the run itself checks.
    asked = ray_resources(re.search(r"--eval-ray-resources (\S+)", entrypoint).group(1))
    (gpu,) = [g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gpu"]
    (container,) = gpu["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == int(gpu["rayStartParams"]["num-gpus"]) >= asked["gpus"] > 0
    assert int(limits["cpu"]) >= asked["cpus"] and "--device cuda" in entrypoint
