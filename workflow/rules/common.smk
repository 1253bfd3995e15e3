# Validation, paths and input functions shared by every rule. Rules stay thin: inputs, outputs,
# resources from config, one `vqvideo ...` shell line. Every path under RESULTS comes from vqvideo.layout
# (LAYOUT below), the module the CLI takes its defaults from too.
from pathlib import Path

from snakemake.utils import validate

from vqvideo.config import ConfigError, check_consistency, config_from_dict, load_schema
from vqvideo.layout import Layout


# the keys each resources entry names itself, before the schema fills its defaults: the keys an entry leaves
# out come from resources.default (see rule_resources)
_RESOURCES_GIVEN = {k: dict(v or {}) for k, v in (config.get("resources") or {}).items()}
validate(config, schema="../schemas/config.schema.yaml", set_default=True)
check_consistency(config)  # constraints between keys, before any job runs

RESULTS = config["results"]
LAYOUT = Layout(RESULTS)
CONFIGFILE = workflow.overwrite_configfiles[-1] if workflow.overwrite_configfiles else "config/config.yaml"


def final_outputs():
    """Every end product of the DAG (the default target when config `targets` is null): each stage adds its
    end products here."""
    return [LAYOUT.manifest, LAYOUT.vqvae / "metrics.json", all_latents,
            LAYOUT.prior("top") / "metrics.json", LAYOUT.prior("bottom") / "metrics.json",
            sample_shards, sample_grids, copy_last_shards, *human_eval_outputs(),
            *[LAYOUT.fvd(r) for r in config["evaluation"]["resolutions"]], LAYOUT.quality,
            LAYOUT.report_tables]


def default_targets():
    """The default target (the `all` target's input). Config `targets` (paths under RESULTS), else :func:`final_outputs`.

    `snakemake --configfile C` with no target then builds what C is meant for; a target written after
    --configfile would be taken for another config file, since the flag takes several.
    """
    if config["targets"] is None:
        return final_outputs()
    for t in config["targets"]:
        if Path(t).is_absolute() or ".." in Path(t).parts:
            raise ConfigError(f"config key 'targets': {t!r} must be a path inside results ({RESULTS}), relative to it")
    return [LAYOUT.root / t for t in config["targets"]]


# --------------------------------------------------------------------------- data
def prepare_data_input(wildcards):
    """The videos folder (made by make_demo_data for the demo, fetch_footage for real.yaml) and the annotation CSVs, when they exist.

    A missing videos folder is left to `vqvideo prepare-data`, which says so plainly, so that a dry run of
    the paper's configuration works before Kinetics is downloaded.
    """
    inputs = {}
    if download_marker():  # download_kinetics600 extracts into data.videos (when download.enabled)
        inputs["download"] = download_marker()
    if config["demo"]["enabled"] or config["footage"]["enabled"] or Path(config["data"]["videos"]).exists():
        inputs["videos"] = config["data"]["videos"]
    if config["data"]["annotations"] and Path(config["data"]["annotations"]).exists():
        inputs["annotations"] = config["data"]["annotations"]
    return inputs


# --------------------------------------------------------------------------- VQ-VAE and latent encoding
EVAL_SPLIT_VQ = config["evaluation"]["split"]


def data_shard_numbers(split):
    """Numbers i (as 5-digit strings) of the data shards {split}-{i}.h5, known once prepare_data ran."""
    checkpoints.prepare_data.get()
    return sorted(p.stem.rsplit("-", 1)[1] for p in LAYOUT.data_shards.glob(f"{split}-*.h5")
                  if not p.name.startswith("."))


def data_splits():
    """Splits that have data shards (train, val, ...), known once prepare_data ran."""
    checkpoints.prepare_data.get()
    return sorted({p.stem.rsplit("-", 1)[0] for p in LAYOUT.data_shards.glob("*.h5") if not p.name.startswith(".")})


def latent_shards(split):
    """Latent shards of one split, one per data shard (use inside an input function or lambda)."""
    return [LAYOUT.latent_shard(split, i) for i in data_shard_numbers(split)]


def recon_shards(wildcards=None):
    """Reconstructions of the evaluation split, one per data shard (input function)."""
    return [LAYOUT.recon_shard(EVAL_SPLIT_VQ, i) for i in data_shard_numbers(EVAL_SPLIT_VQ)]


def all_latents(wildcards=None):
    """Every latent shard of every split plus the evaluation split's reconstructions (input function)."""
    return [p for split in data_splits() for p in latent_shards(split)] + recon_shards()


# --------------------------------------------------------------------------- sampling
def sample_shards(wildcards=None):
    """Every sample shard, one per data shard of the evaluation split (input function)."""
    return [LAYOUT.sample_shard(i) for i in data_shard_numbers(EVAL_SPLIT_VQ)]


def sample_grids(wildcards=None):
    """The grid (GIF and MP4) of every sample shard (input function)."""
    return [LAYOUT.sample_grid(i, ext) for i in data_shard_numbers(EVAL_SPLIT_VQ) for ext in ("gif", "mp4")]


def copy_last_shards(wildcards=None):
    """Every shard of the copy-last baseline, one per data shard of the evaluation split (input function)."""
    return [LAYOUT.copy_last_shard(i) for i in data_shard_numbers(EVAL_SPLIT_VQ)]


# --------------------------------------------------------------------------- human evaluation
RATINGS_DIR = LAYOUT.ratings(config["human_eval"]["ratings_dir"])


def ratings_files(wildcards=None):
    """The raters' CSVs in the ratings folder, RESULTS/human_eval/<human_eval.ratings_dir>/ (input function)."""
    return sorted(str(p) for p in RATINGS_DIR.glob("*.csv") if not p.name.startswith("."))


def human_eval_outputs():
    """The rating page and key always; the analysis of the ratings once the ratings folder holds a CSV."""
    outputs = [LAYOUT.human_eval_page, LAYOUT.human_eval_key]
    if ratings_files():
        outputs += [LAYOUT.human_eval_json, LAYOUT.human_eval_chart]
    return outputs


def download_marker():
    """complete.json of download_kinetics600 when download.enabled (an input of prepare_data), else nothing."""
    if config["download"]["enabled"]:
        return [f"{config['download']['archives']}/complete.json"]
    return []


# the schema's defaults of one resources entry (used where neither the rule's entry nor resources.default
# names a key)
_RESOURCE_DEFAULTS = {key: spec.get("default") for key, spec in load_schema()["$defs"]["resources"]["properties"].items()}


def rule_settings(name):
    """config["resources"][name] merged over config["resources"]["default"] (the schema fills the rest)."""
    merged = dict(_RESOURCE_DEFAULTS)
    merged.update(_RESOURCES_GIVEN.get("default", {}))
    merged.update(_RESOURCES_GIVEN.get(name, {}))
    return merged


# the rules whose shell line starts with launcher(), the only ones that can span nodes, and their config sections
MULTI_NODE_RULES = {"train_vqvae": "vqvae", "train_top_prior": "top_prior", "train_bottom_prior": "bottom_prior"}


def check_batch_split():
    """Each training's global batch divides over its nodes x tasks processes x accum_steps, before any job runs."""
    typed = config_from_dict(config)  # a section the config file leaves out still has its defaults here
    for rule, section in MULTI_NODE_RULES.items():
        r, train = rule_settings(rule), getattr(typed, section).train
        split = r["nodes"] * r["tasks"] * train.accum_steps
        if train.batch_size % split:
            raise ConfigError(f"config key '{section}.train.batch_size' = {train.batch_size}: the global batch "
                              f"must divide by resources.{rule}.nodes x tasks x {section}.train.accum_steps = "
                              f"{r['nodes']} x {r['tasks']} x {train.accum_steps} = {split}")


def rule_resources(name):
    """Snakemake resources for the jobs of `name`, from config.

    In a .smk file:  resources: **rule_resources("train_vqvae")

    The project's keys are per node: `tasks` torchrun processes (DDP replicas), `gpus` GPUs, `cpus_per_task`
    CPUs and `mem_mb` memory on each of `nodes` nodes. On one node (`nodes: 1`) a job is one SLURM task with
    them all: `gpus` becomes Snakemake's `gpu` (the plugin's `--gpus`, a total per job; and a countable
    resource for `--resources gpu=1` on one machine), and `tasks_per_gpu=0` stops the plugin asking for a task
    per GPU. On several nodes the job uses the plugin's multi-node support: its `nodes` (`--nodes`), its
    `tasks` = one SLURM task per node (`--ntasks`: one torchrun each, see `launcher`), and `mpi`, which makes the
    plugin run the rule's shell line as it is, on the first node, whose `srun` starts the tasks; GPUs become
    `gres` (gpu:<gpus>, per node: `--gpus` would be a total that SLURM may spread unevenly).
    Partition, account, qos and extra sbatch flags come from the `slurm` section; empty ones are left out.
    """
    r = rule_settings(name)
    slurm = config["slurm"]
    out = {
        "mem_mb": r["mem_mb"],
        "runtime": r["runtime"],
        "cpus_per_task": r["cpus_per_task"],
    }
    nodes = r["nodes"]
    if nodes > 1 and name not in MULTI_NODE_RULES:
        raise ConfigError(f"config key 'resources.{name}.nodes' = {nodes}: only the trainings "
                          f"({', '.join(MULTI_NODE_RULES)}) span nodes")
    gres = r.get("gres") or (f"gpu:{r['gpus']}" if nodes > 1 and r["gpus"] > 0 else None)
    if gres:
        out["gres"] = gres
    elif r["gpus"] > 0:
        out["gpu"] = r["gpus"]
    if gres or r["gpus"] > 0:
        out["tasks_per_gpu"] = 0
    elif nodes == 1:
        out["tasks"] = 1
    if nodes > 1:
        out.update(nodes=nodes, tasks=nodes, mpi=srun_prefix(r))
    optional = {
        "slurm_partition": r.get("partition") or slurm.get("partition"),
        "slurm_account": slurm.get("account"),
        "qos": slurm.get("qos"),
        "constraint": r.get("constraint"),
        "slurm_extra": " ".join(x for x in (slurm.get("extra"), r.get("slurm_extra")) if x) or None,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def srun_prefix(settings):
    """The plugin's `mpi` resource of a multi-node job: srun starting one task (one torchrun) on each node.

    The job step gets the job's GPUs (srun's default); the CPUs are asked for again because srun does not
    inherit --cpus-per-task from sbatch. --kill-on-bad-exit: a node whose torchrun fails ends the others at once.
    """
    n = settings["nodes"]
    return (f"srun --nodes={n} --ntasks={n} --ntasks-per-node=1 --cpus-per-task={settings['cpus_per_task']} "
            f"--kill-on-bad-exit=1")


check_batch_split()


def rule_threads(name):
    """Threads for the jobs of `name` (its cpus_per_task).

    In a .smk file:  threads: rule_threads("train_vqvae")
    """
    return rule_settings(name)["cpus_per_task"]


def launcher(name, resume=None):
    """The command that starts `vqvideo` for `name`: plain, torchrun over `tasks` DDP processes on one node, or
    one torchrun per node on `nodes` nodes.

    Use in a shell line as `{params.launch} train-vqvae ...` with `params: launch=launcher("x")`.
    The training harness reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) to set up DDP.
    With `resume` (the checkpoint the command writes), the command runs under vqvideo.launch: on SLURM it is
    stopped `slurm.stop_margin` minutes before the time limit so that it checkpoints, the job is requeued
    (`scontrol requeue`: the same job runs again and resumes; where SLURM refuses, Snakemake's retries submit
    it anew), and the checkpoint of a stopped or failed attempt is kept aside from Snakemake's cleanup so that
    the next attempt resumes from it.
    With `nodes > 1` the command carries the job's `mpi` resource (srun, see srun_prefix), as the plugin's
    MPI mode expects of the shell line: srun starts `vqvideo.launch node` on every node, which starts torchrun
    with the c10d rendezvous on the job's first node (waiting `slurm.rendezvous_timeout` seconds for the others).
    """
    settings = rule_settings(name)
    cmd = "vqvideo"
    if settings["nodes"] > 1:
        if not resume:
            raise ValueError(f"{name}: nodes > 1 needs the checkpoint the training writes (resume=...)")
        cmd = (f"{srun_prefix(settings)} python -m vqvideo.launch node --nproc-per-node={settings['tasks']} "
               f"--rdzv-timeout={config['slurm']['rendezvous_timeout']} -- -m vqvideo.cli")
    elif settings["tasks"] > 1:
        cmd = f"torchrun --standalone --nnodes=1 --nproc-per-node={settings['tasks']} -m vqvideo.cli"
    if resume:
        margin = config["slurm"]["stop_margin"]
        nodes = f"--nodes {settings['nodes']} " if settings["nodes"] > 1 else ""
        cmd = (f"python -m vqvideo.launch --resume {resume} --runtime {settings['runtime']} "
               f"--margin {margin} --requeue {nodes}-- {cmd}")
    return cmd
