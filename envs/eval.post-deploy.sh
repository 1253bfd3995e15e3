#!/usr/bin/env bash
# Snakemake runs this inside the new environment, from the working directory (the repository root):
# install vqvideo itself; its dependencies come from the environment file beside this script.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
