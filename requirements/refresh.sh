#!/usr/bin/env bash
# Refresh requirements/lock.txt, the versions CI tests and the README's commands install (as constraints):
#   bash requirements/refresh.sh
# pip-compile resolves the package's ranges (pyproject.toml, with the test extra) for this Python (3.11) and
# torch==2.13.0 (requirements/torch.in) through this machine's pip configuration; `uv pip compile` would ignore
# that configuration and miss the CPU build of torch. Then envs/*.yaml take their pins from the new lock:
#   python requirements/sync_envs.py
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q 'pip-tools==7.6.2'
CUSTOM_COMPILE_COMMAND="bash requirements/refresh.sh" pip-compile --quiet --extra test --strip-extras --no-emit-index-url --no-emit-find-links \
    --output-file requirements/lock.txt pyproject.toml requirements/torch.in
python requirements/sync_envs.py
