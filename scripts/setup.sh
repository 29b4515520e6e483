#!/usr/bin/env bash
# One-command set-up: run inside the virtualenv you want the plugin in.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --upgrade pip
python -m pip install "torch==2.13.0"
python -m pip install -e ".[dev]"
