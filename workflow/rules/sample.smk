# Sampling (vqvideo sample): one job per latent shard of the evaluation split, after both priors; and the
# copy-last baseline, one job per data shard of the evaluation split. Shard i of each holds the clips of data
# shard {split}-{i:05d}.h5, so every stage numbers its shards alike. The input functions sample_shards,
# sample_grids and copy_last_shards (common.smk) gather them.


rule sample:
    input:
        latents=f"{RESULTS}/latents/{EVAL_SPLIT_VQ}/shard-{{i}}.h5",
        vqvae=f"{RESULTS}/vqvae/checkpoint.pt",
        top=f"{RESULTS}/priors/top/checkpoint.pt",
        bottom=f"{RESULTS}/priors/bottom/checkpoint.pt",
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        shard=f"{RESULTS}/samples/shard-{{i}}.h5",
        gif=report(f"{RESULTS}/samples/grid-{{i}}.gif", caption="../report/samples.rst", category="Samples"),
        mp4=f"{RESULTS}/samples/grid-{{i}}.mp4",
    wildcard_constraints:
        i=r"\d{5}",
    log:
        f"{RESULTS}/logs/sample/shard-{{i}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("sample")
    resources:
        **rule_resources("sample"),
    params:
        configfile=CONFIGFILE,
    shell:
        "vqvideo sample --configfile {params.configfile} --shard {wildcards.i} > {log} 2>&1"


rule copy_last_baseline:
    input:
        shard=f"{RESULTS}/data/shards/{EVAL_SPLIT_VQ}-{{i}}.h5",
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        f"{RESULTS}/baselines/copy_last/shard-{{i}}.h5",
    wildcard_constraints:
        i=r"\d{5}",
    log:
        f"{RESULTS}/logs/copy_last/shard-{{i}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("copy_last_baseline")
    resources:
        **rule_resources("copy_last_baseline"),
    params:
        configfile=CONFIGFILE,
    shell:
        "vqvideo sample --method copy-last --configfile {params.configfile} --shard {wildcards.i} > {log} 2>&1"
