"""The paper's job graph, checked: config/config.yaml through the cluster profile (`--profile slurm`).

The Kinetics-600 paths point at a small fixture tree of the real layout ({split}/{label}/{id}_{start}_{end}.mp4
and annotation CSVs), and data.shard_size is 2 so that the scatter over shards shows (workers: 2 for this
machine); everything else is the paper config. prepare_data is a checkpoint, so a dry run cannot see past it:
it runs for real on the fixture, then the rest of the DAG is dry-run through the SLURM profile (which also
proves `--profile slurm` resolves from the repository root). Checked: every stage is there, the scatter counts
follow from the shards and the config, GPU rules ask for the configured GPUs, and no rule of the workflow is
left with default resources.
"""

import csv
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from vqvideo.data.demo import write_mp4
from repo_copy import copy_repo

ROOT = Path(__file__).resolve().parents[2]
# the DAG's stages (README: What each target writes); encode_latents_eval is encode_latents for the evaluation split (+ reconstructions)
STAGES = {"train_vqvae", "encode_latents", "encode_latents_eval", "train_top_prior", "train_bottom_prior",
          "sample", "copy_last_baseline", "fvd", "export_pairs"}
GPU_RULES = {"train_vqvae", "encode_latents", "encode_latents_eval", "train_top_prior", "train_bottom_prior",
             "sample", "fvd"}
ONE_PER_EVAL_SHARD = {"encode_latents_eval", "sample", "copy_last_baseline"}

# the fixture runs prepare_data for real and dry-runs the whole DAG: about 100 s on 2 busy cores
pytestmark = pytest.mark.slow


def _kinetics_fixture(root: Path) -> None:
    """train: 5 videos over 2 labels, val: 3 (the CVDF names; 20 frames of 25 fps, 80x64), plus the CSVs."""
    rng = np.random.default_rng(0)
    rows = {"train": [], "val": []}
    for split, n in (("train", 5), ("val", 3)):
        for k in range(n):
            label = ["juggling balls", "playing drums"][k % 2]
            yid, start = f"{split[:2]}{k:09d}", 10 * k
            frames = rng.integers(0, 255, (20, 64, 80, 3), dtype=np.uint8)
            write_mp4(root / split / label / f"{yid}_{start:06d}_{start + 10:06d}.mp4", frames, 25)
            rows[split].append([label, yid, start, start + 10, "validate" if split == "val" else split])
    (root / "annotations").mkdir(parents=True)
    for split, r in rows.items():
        with open(root / "annotations" / f"{split}.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([["label", "youtube_id", "time_start", "time_end", "split"], *r])


def _jobs(dry_run_output: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job a dry run lists."""
    jobs = []
    for m in re.finditer(r"^(?:rule|checkpoint|localrule) (\w+):\n(.*?)(?=^\S|\Z)", dry_run_output, re.M | re.S):
        res = {}
        r = re.search(r"^\s+resources: (.*)$", m.group(2), re.M)
        for item in (r.group(1).split(", ") if r else []):
            key, _, value = item.partition("=")
            res[key] = int(value) if value.isdigit() else value
        if m.group(1) != "all":
            jobs.append((m.group(1), res))
    return jobs


@pytest.fixture(scope="module")
def paper_dag(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    _kinetics_fixture(repo / "kinetics_fixture")
    cfg = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    cfg["data"].update(videos="kinetics_fixture", annotations="kinetics_fixture/annotations", shard_size=2, workers=2)
    (repo / "config" / "paper_fixture.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    args = ["--configfile", "config/paper_fixture.yaml"]
    run = subprocess.run(["snakemake", "results/data/manifest.csv", "--cores", "2", *args], cwd=repo,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    dry = subprocess.run(["snakemake", "-n", "--profile", "slurm", *args], cwd=repo, capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    rules = subprocess.run(["snakemake", "--list-rules", *args], cwd=repo, capture_output=True, text=True,
                           timeout=120).stdout.split()
    shards = sorted(p.name for p in (repo / "results" / "data" / "shards").glob("*.h5"))
    return cfg, _jobs(dry.stdout + dry.stderr), rules, shards


def test_every_stage_is_in_the_paper_dag(paper_dag):
    _, jobs, _, _ = paper_dag
    assert STAGES <= {rule for rule, _ in jobs}, sorted(STAGES - {rule for rule, _ in jobs})


def test_scatter_counts_follow_the_shards_and_config(paper_dag):
    cfg, jobs, _, shards = paper_dag
    counts = Counter(rule for rule, _ in jobs)
    split = cfg["evaluation"]["split"]
    n_eval = sum(s.startswith(f"{split}-") for s in shards)
    assert len(shards) == 5 and n_eval == 2  # 5 train videos -> 3 shards of 2, 3 val videos -> 2 shards
    assert counts["encode_latents"] + counts["encode_latents_eval"] == len(shards)
    for rule in ONE_PER_EVAL_SHARD:
        assert counts[rule] == n_eval, rule
    assert counts["fvd"] == len(cfg["evaluation"]["resolutions"])
    for rule in ("train_vqvae", "train_top_prior", "train_bottom_prior"):
        assert counts[rule] == 1, rule


def test_gpu_rules_ask_for_their_gpus(paper_dag):
    cfg, jobs, _, _ = paper_dag
    gpu_hours = 0.0
    for rule, res in jobs:
        name = "encode_latents" if rule == "encode_latents_eval" else rule
        want = cfg["resources"][name].get("gpus", 0)
        nodes = cfg["resources"][name].get("nodes", 1)
        if rule in GPU_RULES and nodes > 1:  # GPUs per node as gres; one SLURM task (one torchrun) per node
            assert want >= 1 and res.get("gres") == f"gpu:{want}" and "gpu" not in res, (rule, res)
            assert res["nodes"] == res["tasks"] == nodes and res.get("tasks_per_gpu") == 0, (rule, res)
            assert res["mpi"].startswith(f"srun --nodes={nodes} "), (rule, res)
        elif rule in GPU_RULES:
            assert want >= 1 and res.get("gpu") == want, (rule, res)
            assert res.get("tasks_per_gpu") == 0, (rule, res)  # one SLURM task; torchrun starts the replicas
            assert "nodes" not in res and "mpi" not in res, (rule, res)
        else:
            assert "gpu" not in res and "gres" not in res, (rule, res)
        gpu_hours += want * nodes * res["runtime"] / 60 if rule in GPU_RULES else 0
    # trainings: (1 + 4 + 1) nodes x 8 GPUs x 24 h per attempt
    assert gpu_hours >= 6 * 8 * 24
    print(f"\npaper DAG: GPU-hours requested per attempt: {gpu_hours:.0f}")


def test_no_rule_is_left_with_default_resources(paper_dag):
    cfg, jobs, rules, _ = paper_dag
    given = cfg["resources"]
    for rule in set(rules) - {"all"}:
        name = "encode_latents" if rule == "encode_latents_eval" else rule
        assert name in given, f"config.yaml has no resources entry for rule {rule}"
    for rule, res in jobs:
        name = "encode_latents" if rule == "encode_latents_eval" else rule
        entry = {**given["default"], **given[name]}
        assert res["mem_mb"] == entry["mem_mb"] and res["runtime"] == entry["runtime"], (rule, res)
        assert res["cpus_per_task"] == entry["cpus_per_task"], (rule, res)
