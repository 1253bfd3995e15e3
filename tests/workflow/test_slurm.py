"""The workflow through a real SLURM: `snakemake --profile tests/profiles/slurm-ci` submits real sbatch jobs.

Needs the single-node SLURM that `.ci/slurm-up.sh` starts (CI does; `.ci/slurm-down.sh` stops it); skipped with
the reason when none answers. The first stages of the smoke DAG (make_demo_data, prepare_data) run once
locally and once on the cluster, in two copies of the repository; the outputs (videos, clips, manifest) must
be equal. make_demo_data
asks for a GPU here (resources.make_demo_data.gpus: 1), so the plugin's --gpus reaches the fake GRES GPUs.
A job that fails on the cluster must name its log files in Snakemake's error.
"""

import re
import shutil
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from repo_copy import copy_repo

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "tests/profiles/slurm-ci"
TARGET = "results/data/manifest.csv"  # prepare_data's output: make_demo_data and prepare_data run


def _slurm_up() -> str | None:
    """None when a SLURM node takes jobs, else why not."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no SLURM client commands (apt-get install slurm-wlm; .ci/slurm-up.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed: {e}"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s in ("idle", "mix", "alloc") for s in states):
        return f"no SLURM node up (sinfo: {out.stdout.strip() or out.stderr.strip()}); start one with .ci/slurm-up.sh"
    return None


_WHY_NOT = _slurm_up()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_WHY_NOT is not None, reason=str(_WHY_NOT))]


def _config(repo: Path, **extra) -> str:
    cfg = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    cfg.setdefault("resources", {}).setdefault("make_demo_data", {})["gpus"] = 1
    cfg["resources"]["make_demo_data"]["mem_mb"] = 500
    cfg["resources"].setdefault("prepare_data", {})["mem_mb"] = 1000
    cfg.update(extra)
    (repo / "config" / "slurm_test.yaml").write_text(yaml.safe_dump(cfg))
    return "config/slurm_test.yaml"


def _snakemake(repo: Path, *args, timeout=400) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    run = subprocess.run(["snakemake", *args], cwd=repo, capture_output=True, text=True, timeout=timeout)
    return run, time.monotonic() - t0


def _outputs(repo: Path) -> dict:
    data = repo / "results" / "data"
    out = {"manifest.csv": (data / "manifest.csv").read_text(), "rejects.csv": (data / "rejects.csv").read_text()}
    for video in sorted((repo / "results" / "demo_videos").rglob("*.mp4")):  # make_demo_data: byte-identical
        out[video.relative_to(repo).as_posix()] = video.read_bytes()
    for shard in sorted((data / "shards").glob("*.h5")):
        with h5py.File(shard, "r") as f:
            out[shard.name] = (np.asarray(f["clips"]), {k: str(v) for k, v in f["clips"].attrs.items()})
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cluster = copy_repo(tmp_path_factory.mktemp("cluster"))
    run_c, t_cluster = _snakemake(cluster, TARGET, "--profile", PROFILE, "--configfile", _config(cluster))
    assert run_c.returncode == 0, run_c.stderr[-3000:]
    local = copy_repo(tmp_path_factory.mktemp("local"))
    run_l, t_local = _snakemake(local, TARGET, "--cores", "2", "--configfile", _config(local))
    assert run_l.returncode == 0, run_l.stderr[-3000:]
    print(f"make_demo_data + prepare_data: cluster {t_cluster:.1f} s, local {t_local:.1f} s")
    return local, cluster, run_c


def test_cluster_outputs_equal_local(runs):
    local, cluster, _ = runs
    a, b = _outputs(local), _outputs(cluster)
    assert a.keys() == b.keys() and any(k.endswith(".h5") for k in a) and any(k.endswith(".mp4") for k in a)
    for key in a:
        if key.endswith(".h5"):
            np.testing.assert_array_equal(a[key][0], b[key][0])
            assert a[key][1] == b[key][1]
        else:
            assert a[key] == b[key], key


def test_jobs_went_through_sbatch_with_their_resources(runs):
    _, cluster, run = runs
    log = run.stderr + run.stdout
    ids = {}
    for m in re.finditer(r"\n(?:rule|checkpoint) (\w+):(.*?)Job \d+ has been submitted with SLURM jobid (\d+)", log, re.S):
        ids[m.group(1)] = m.group(3)
    assert {"make_demo_data", "prepare_data"} <= ids.keys(), log[-3000:]
    demo = subprocess.run(["scontrol", "show", "job", ids["make_demo_data"]], capture_output=True, text=True).stdout
    if demo:  # slurmctld forgets finished jobs after MinJobAge (300 s in .ci/slurm-up.sh)
        assert "gpu:1" in demo or "gpu=1" in demo, demo
        assert re.search(r"MinMemoryNode=500M|mem=500M", demo), demo
    # the plugin's per-job logs are where it says they are
    assert list((cluster / ".snakemake" / "slurm_logs").glob("rule_prepare_data/*.log")) or \
        "slurm_logs" in log


def test_failing_job_names_its_logs(runs, tmp_path):
    _, cluster, _ = runs
    # no demo, and a videos folder that does not exist: prepare-data fails in its SLURM job
    cfg = _config(cluster, demo={"enabled": False}, results="results_fail",
                  data={**yaml.safe_load((cluster / "config" / "smoke.yaml").read_text())["data"],
                        "videos": "no/such/videos"})
    run, _ = _snakemake(cluster, "results_fail/data/manifest.csv", "--profile", PROFILE, "--configfile", cfg)
    assert run.returncode != 0
    err = run.stderr + run.stdout
    assert "Error in rule prepare_data" in err, err[-3000:]
    assert re.search(r"\.snakemake/slurm_logs/rule_prepare_data/\d+\.log", err), err[-3000:]
    assert "results_fail/logs/prepare_data.log" in err, err[-3000:]


TRAINER = (Path(__file__).parents[1] / "stand_in_trainer.py").read_text()


def test_training_survives_the_time_limit(tmp_path):
    """A 'training' (30 s) longer than its 1-minute job less a 30 s margin: vqvideo.launch stops it before the
    limit (squeue's end time minus the margin), keeps its checkpoint from Snakemake's cleanup, and the retry
    resumes and finishes."""
    shutil.copytree(ROOT / PROFILE, tmp_path / "profile")
    (tmp_path / "trainer.py").write_text(TRAINER)
    (tmp_path / "Snakefile").write_text(
        "rule train:\n"
        "    output: 'ckpt.txt'\n"
        "    resources: runtime=1, mem_mb=200\n"
        "    shell: 'python -m vqvideo.launch --resume {output} --runtime 1 --margin 0.5 -- "
        "python trainer.py {output} 600 >> trace.txt 2>&1'\n")  # not a log: Snakemake empties logs per attempt
    run, seconds = _snakemake(tmp_path, "--profile", "profile", "--retries", "2")
    assert run.returncode == 0, (run.stderr + run.stdout)[-3000:]
    assert (tmp_path / "ckpt.txt").read_text() == "600"
    trace = (tmp_path / "trace.txt").read_text()
    starts = [int(s) for s in re.findall(r"start at step (\d+)", trace)]
    assert starts[0] == 0 and len(starts) >= 2 and 0 < starts[1] < 600, trace  # resumed, not restarted
    assert "stopping the training" in trace
    assert len(re.findall(r"submitted with SLURM jobid", run.stderr + run.stdout)) == len(starts)
