# The two PixelCNN priors (vqvideo train-prior), trained on the cached latents only. Both depend on the
# latent shards alone, so Snakemake runs them in parallel; the input function latent_shards(split) in
# common.smk waits for the prepare_data checkpoint.
import os


rule train_top_prior:
    input:
        latents=lambda w: latent_shards("train") + latent_shards(EVAL_SPLIT_VQ),
    output:
        checkpoint=f"{RESULTS}/priors/top/checkpoint.pt",
        metrics=f"{RESULTS}/priors/top/metrics.json",
        loss=report(f"{RESULTS}/priors/top/loss.png", caption="../report/priors.rst", category="Priors"),
        bits=report(f"{RESULTS}/priors/top/bits.png", caption="../report/priors.rst", category="Priors"),
    log:
        f"{RESULTS}/logs/train_top_prior.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("train_top_prior")
    resources:
        **rule_resources("train_top_prior"),
    params:
        launch=launcher("train_top_prior", resume=f"{RESULTS}/priors/top/checkpoint.pt"),
        configfile=CONFIGFILE,
        latents=lambda wildcards, input: os.path.dirname(os.path.dirname(input.latents[0])),
        out=lambda wildcards, output: os.path.dirname(output.checkpoint),
    shell:
        "{params.launch} train-prior --level top --configfile {params.configfile} --latents {params.latents} "
        "--out {params.out} > {log} 2>&1"


rule train_bottom_prior:
    input:
        latents=lambda w: latent_shards("train") + latent_shards(EVAL_SPLIT_VQ),
    output:
        checkpoint=f"{RESULTS}/priors/bottom/checkpoint.pt",
        metrics=f"{RESULTS}/priors/bottom/metrics.json",
        loss=report(f"{RESULTS}/priors/bottom/loss.png", caption="../report/priors.rst", category="Priors"),
        bits=report(f"{RESULTS}/priors/bottom/bits.png", caption="../report/priors.rst", category="Priors"),
    log:
        f"{RESULTS}/logs/train_bottom_prior.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("train_bottom_prior")
    resources:
        **rule_resources("train_bottom_prior"),
    params:
        launch=launcher("train_bottom_prior", resume=f"{RESULTS}/priors/bottom/checkpoint.pt"),
        configfile=CONFIGFILE,
        latents=lambda wildcards, input: os.path.dirname(os.path.dirname(input.latents[0])),
        out=lambda wildcards, output: os.path.dirname(output.checkpoint),
    shell:
        "{params.launch} train-prior --level bottom --configfile {params.configfile} --latents {params.latents} "
        "--out {params.out} > {log} 2>&1"
