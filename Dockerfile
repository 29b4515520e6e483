# syntax=docker/dockerfile:1
# The evaluator service: `docker build --target production -t policyeval .`, then
#   docker run --rm -e POLICY_URI=s3://bucket/policy.pt -e OUTPUT_URI=s3://bucket/results policyeval
# prints the results JSON on stdout (see pytest_policyeval/service.py for every variable). The same
# image runs the long-running service: `policyeval serve` (the API) and `policyeval worker`.
# `--target ray` is every node of a Ray cluster (KubeRay); `--target development` adds the test
# tools and runs the test suite by default.

FROM python:3.11-slim AS base
# The torch wheels' index: CPU by default; a GPU image passes e.g. .../whl/cu128.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    POLICYEVAL_DATA_DIR=/data \
    POLICYEVAL_SUITES_DIR=/app/suites
WORKDIR /app
# torch first, pinned: its CPU build (a CUDA image would install the CUDA build here instead).
RUN pip install "torch==2.13.0" --index-url "$TORCH_INDEX"

FROM base AS production
COPY pyproject.toml README.md ./
COPY pytest_policyeval ./pytest_policyeval
COPY suites ./suites
RUN pip install ".[s3,wandb,gymnasium,pettingzoo,serve,html]" && useradd --create-home --uid 1000 policyeval \
    && mkdir -p /data /reports && chown policyeval /data /reports
USER policyeval
VOLUME ["/data"]
ENTRYPOINT ["python", "-m", "pytest_policyeval.service"]

# Every node of a Ray cluster (deploy/kubernetes/policyeval-rayjob.yaml): KubeRay starts Ray in it
# and runs the suite on the head, so it has no entrypoint of its own.
FROM base AS ray
COPY pyproject.toml README.md ./
COPY pytest_policyeval ./pytest_policyeval
COPY suites ./suites
RUN pip install ".[s3,wandb,gymnasium,pettingzoo,ray]" && useradd --create-home --uid 1000 policyeval
USER policyeval

FROM base AS development
RUN apt-get update && apt-get install -y --no-install-recommends chromium git && rm -rf /var/lib/apt/lists/*
COPY . .
RUN pip install -e ".[dev]"
CMD ["python", "-m", "pytest", "-q", "-n", "auto"]
