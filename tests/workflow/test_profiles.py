"""The README's profile names work exactly as written, from the repository root.

`snakemake --profile slurm` resolves `slurm/` in the working directory (Snakemake also looks in
~/.config/snakemake and /etc/xdg/snakemake, so the test proves it read *our* file by breaking it in a copy),
and `snakemake --profile profiles/local` is a path from the root. Dry runs only: no jobs run.
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _dry(cwd: Path, profile: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", "-n", "--profile", profile, "--configfile", "config/demo.yaml"], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["slurm", "profiles/local"])
def test_profile_resolves_from_the_repository_root(profile):
    run = _dry(ROOT, profile)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Using profile {profile} for setting default command line arguments" in run.stdout + run.stderr


@pytest.mark.slow
def test_the_slurm_profile_read_is_the_repositorys(tmp_path):
    repo = tmp_path / "repo"
    for part in ("Snakefile", "workflow", "config", "slurm", "envs", "src/vqvideo/schemas"):
        src = ROOT / part
        (repo / part).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, repo / part, symlinks=True)
        else:
            shutil.copy2(src, repo / part)
    profile = yaml.safe_load((repo / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1 and profile["slurm-requeue"] is True  # the resume mechanism relies on these
    (repo / "slurm" / "config.yaml").write_text(yaml.safe_dump({**profile, "jobs": "not-a-number"}))
    run = _dry(repo, "slurm")
    assert run.returncode != 0 and "number of jobs" in run.stderr, run.stderr[-2000:]


def test_local_profile_runs_one_gpu_job_at_a_time():
    profile = yaml.safe_load((ROOT / "profiles" / "local" / "config.yaml").read_text())
    assert profile["resources"] == {"gpu": 1} and profile["cores"] == "all"
