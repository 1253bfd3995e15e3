# Sampling (vqvideo sample): one job per latent shard of the evaluation split, after both priors; and the
# copy-last baseline, one job per data shard of the evaluation split. Shard i of each holds the clips of data
# shard {split}-{i:05d}.h5, so every stage numbers its shards alike.
EVAL_SPLIT = config["evaluation"]["split"]


def sample_shards(wildcards=None):
    """Every sample shard (input function: the evaluation stage gathers these), one per data shard of the
    evaluation split (data_shard_numbers in common.smk waits for the prepare_data checkpoint)."""
    return [f"{RESULTS}/samples/shard-{i}.h5" for i in data_shard_numbers(EVAL_SPLIT)]


def copy_last_shards(wildcards=None):
    """Every shard of the copy-last baseline (input function)."""
    return [f"{RESULTS}/baselines/copy_last/shard-{i}.h5" for i in data_shard_numbers(EVAL_SPLIT)]


def sample_grids(wildcards=None):
    """The grid (GIF and MP4) of every sample shard (input function)."""
    return [f"{RESULTS}/samples/grid-{i}.{ext}" for i in data_shard_numbers(EVAL_SPLIT) for ext in ("gif", "mp4")]


rule sample:
    input:
        latents=f"{RESULTS}/latents/{EVAL_SPLIT}/shard-{{i}}.h5",
        vqvae=f"{RESULTS}/vqvae/checkpoint.pt",
        top=f"{RESULTS}/priors/top/checkpoint.pt",
        bottom=f"{RESULTS}/priors/bottom/checkpoint.pt",
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        shard=f"{RESULTS}/samples/shard-{{i}}.h5",
        gif=f"{RESULTS}/samples/grid-{{i}}.gif",
        mp4=f"{RESULTS}/samples/grid-{{i}}.mp4",
    wildcard_constraints:
        i=r"\d{5}",
    log:
        f"{RESULTS}/logs/sample/shard-{{i}}.log",
    threads: rule_threads("sample")
    resources:
        **rule_resources("sample"),
    shell:
        "vqvideo sample --configfile {CONFIGFILE} --shard {wildcards.i} > {log} 2>&1"


rule copy_last_baseline:
    input:
        shard=f"{RESULTS}/data/shards/{EVAL_SPLIT}-{{i}}.h5",
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        f"{RESULTS}/baselines/copy_last/shard-{{i}}.h5",
    wildcard_constraints:
        i=r"\d{5}",
    log:
        f"{RESULTS}/logs/copy_last/shard-{{i}}.log",
    resources:
        **rule_resources("copy_last_baseline"),
    shell:
        "vqvideo sample --method copy-last --configfile {CONFIGFILE} --shard {wildcards.i} > {log} 2>&1"
