# Sampling (vqvideo sample): one job per latent shard of the evaluation split, after both priors; and the
# copy-last baseline, one job per data shard of the evaluation split. Shard i of each holds the clips of data
# shard {split}-{i:05d}.h5, so every stage numbers its shards alike. The input functions sample_shards,
# sample_grids and copy_last_shards (common.smk) gather them.


rule sample:
    input:
        latents=LAYOUT.latent_shard(EVAL_SPLIT_VQ, "{i}"),
        vqvae=LAYOUT.vqvae_checkpoint,
        top=LAYOUT.prior_checkpoint("top"),
        bottom=LAYOUT.prior_checkpoint("bottom"),
        manifest=LAYOUT.manifest,
    output:
        shard=LAYOUT.sample_shard("{i}"),
        gif=report(LAYOUT.sample_grid("{i}", "gif"), caption="../report/samples.rst", category="Samples"),
        mp4=LAYOUT.sample_grid("{i}", "mp4"),
    wildcard_constraints:
        i=r"\d{5}",
    log:
        LAYOUT.log("sample/shard-{i}"),
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("sample")
    resources:
        **rule_resources("sample"),
    params:
        configfile=CONFIGFILE,
    shell:
        "vqvideo sample --configfile {params.configfile} --shard {wildcards.i} --latents {input.latents} "
        "--manifest {input.manifest} --vqvae {input.vqvae} --top {input.top} --bottom {input.bottom} "
        "--out {output.shard} --gif {output.gif} --mp4 {output.mp4} > {log} 2>&1"


rule copy_last_baseline:
    input:
        shard=LAYOUT.data_shard(EVAL_SPLIT_VQ, "{i}"),
        manifest=LAYOUT.manifest,
    output:
        LAYOUT.copy_last_shard("{i}"),
    wildcard_constraints:
        i=r"\d{5}",
    log:
        LAYOUT.log("copy_last/shard-{i}"),
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("copy_last_baseline")
    resources:
        **rule_resources("copy_last_baseline"),
    params:
        configfile=CONFIGFILE,
    shell:
        "vqvideo sample --method copy-last --configfile {params.configfile} --shard {wildcards.i} "
        "--manifest {input.manifest} --out {output} > {log} 2>&1"
