# syntax=docker/dockerfile:1
# The evaluator service: `docker build --target production -t policyeval .`, then
#   docker run --rm -e POLICY_URI=s3://bucket/policy.pt -e OUTPUT_URI=s3://bucket/results policyeval
# prints the results JSON on stdout (see pytest_policyeval/service.py for every variable).
# `--target development` adds the test tools and runs the test suite by default.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    POLICYEVAL_DATA_DIR=/data \
    POLICYEVAL_SUITES_DIR=/app/suites
WORKDIR /app
# torch first, pinned: its CPU build (a CUDA image would install the CUDA build here instead).
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

FROM base AS production
COPY pyproject.toml README.md ./
COPY pytest_policyeval ./pytest_policyeval
COPY suites ./suites
RUN pip install ".[s3,wandb,gymnasium,pettingzoo]" && useradd --create-home --uid 1000 policyeval \
    && mkdir -p /data && chown policyeval /data
USER policyeval
VOLUME ["/data"]
ENTRYPOINT ["python", "-m", "pytest_policyeval.service"]

FROM base AS development
RUN apt-get update && apt-get install -y --no-install-recommends chromium git && rm -rf /var/lib/apt/lists/*
COPY . .
RUN pip install -e ".[dev]"
CMD ["python", "-m", "pytest", "-q", "-n", "auto"]
