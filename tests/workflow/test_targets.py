"""`snakemake --configfile C` with no target builds what C names in `targets` (rule all), the whole DAG without it.

A target written after --configfile is read as one more config file (the flag takes several), so the README's
commands name none; config/real.yaml names its VQ-VAE's metrics instead. Dry runs in a fresh copy of the
repository, so that results of earlier runs cannot hide a job.
"""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from repo_copy import copy_repo

# a dry run parses the whole workflow: a few seconds on an idle machine
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("repo"))


def _dry(repo: Path, configfile: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", "-n", "--cores", "2", "--configfile", configfile], cwd=repo,
                          capture_output=True, text=True, timeout=300)


def _job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: {rule: jobs}."""
    table = dry_run_output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_real_yaml_without_a_target_trains_its_vqvae_only(repo):
    run = _dry(repo, "config/real.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert _job_counts(run.stdout) == {"fetch_footage": 1, "prepare_data": 1, "train_vqvae": 1, "all": 1}
    rule_all = re.search(r"^(?:local)?rule all:\n\s+input: (.*)$", run.stdout, re.M)
    assert rule_all and rule_all.group(1) == "results/real/vqvae/metrics.json", run.stdout[-3000:]


def test_demo_yaml_without_a_target_still_builds_the_whole_dag(repo):
    run = _dry(repo, "config/demo.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = _job_counts(run.stdout)
    # prepare_data is a checkpoint: a dry run lists the jobs after it that it can see, the priors and FVD among them
    assert {"make_demo_data", "prepare_data", "train_vqvae", "train_top_prior", "train_bottom_prior", "fvd"} <= set(jobs)


def test_a_target_outside_results_is_refused_by_key(repo):
    cfg = yaml.safe_load((repo / "config" / "real.yaml").read_text())
    cfg["targets"] = ["../elsewhere/metrics.json"]
    (repo / "config" / "bad_targets.yaml").write_text(yaml.safe_dump(cfg))
    run = _dry(repo, "config/bad_targets.yaml")
    assert run.returncode != 0
    assert "config key 'targets': '../elsewhere/metrics.json' must be a path inside results" in run.stdout + run.stderr
