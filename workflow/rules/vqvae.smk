# The hierarchical VQ-VAE (vqvideo train-vqvae), then every data shard encoded into latent codes
# (vqvideo encode): one job per data shard, scattered over the shards that prepare_data made; the input
# functions latent_shards(split), recon_shards() and all_latents() in common.smk gather them.
import os


rule train_vqvae:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        checkpoint=f"{RESULTS}/vqvae/checkpoint.pt",
        metrics=f"{RESULTS}/vqvae/metrics.json",
        grid=report(f"{RESULTS}/vqvae/recon.gif", caption="../report/vqvae.rst", category="VQ-VAE"),
        curves=report(f"{RESULTS}/vqvae/psnr.png", caption="../report/vqvae.rst", category="VQ-VAE"),
        loss=report(f"{RESULTS}/vqvae/loss.png", caption="../report/vqvae_loss.rst", category="VQ-VAE"),
        usage=report(f"{RESULTS}/vqvae/usage.png", caption="../report/vqvae_usage.rst", category="VQ-VAE"),
    log:
        f"{RESULTS}/logs/train_vqvae.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("train_vqvae")
    resources:
        **rule_resources("train_vqvae"),
    params:
        launch=launcher("train_vqvae", resume=f"{RESULTS}/vqvae/checkpoint.pt"),
        configfile=CONFIGFILE,
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.checkpoint),
    shell:
        "{params.launch} train-vqvae --configfile {params.configfile} --data {params.data} --out {params.out} > {log} 2>&1"


# the evaluation split also gets its reconstructions (FVD* compares samples with them)
ruleorder: encode_latents_eval > encode_latents


rule encode_latents:
    input:
        shard=f"{RESULTS}/data/shards/{{split}}-{{i}}.h5",
        vqvae=f"{RESULTS}/vqvae/checkpoint.pt",
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        f"{RESULTS}/latents/{{split}}/shard-{{i}}.h5",
    wildcard_constraints:
        split=r"[^/]+",
        i=r"\d{5}",
    log:
        f"{RESULTS}/logs/encode/{{split}}-{{i}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("encode_latents")
    resources:
        **rule_resources("encode_latents"),
    params:
        configfile=CONFIGFILE,
    shell:
        "vqvideo encode --configfile {params.configfile} --checkpoint {input.vqvae} --shard {input.shard} "
        "--out {output} > {log} 2>&1"


rule encode_latents_eval:
    input:
        shard=f"{RESULTS}/data/shards/{EVAL_SPLIT_VQ}-{{i}}.h5",
        vqvae=f"{RESULTS}/vqvae/checkpoint.pt",
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        shard=f"{RESULTS}/latents/{EVAL_SPLIT_VQ}/shard-{{i}}.h5",
        recon=f"{RESULTS}/latents/{EVAL_SPLIT_VQ}/recon-{{i}}.h5",
    wildcard_constraints:
        i=r"\d{5}",
    log:
        f"{RESULTS}/logs/encode/{EVAL_SPLIT_VQ}-{{i}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("encode_latents")
    resources:
        **rule_resources("encode_latents"),
    params:
        configfile=CONFIGFILE,
    shell:
        "vqvideo encode --configfile {params.configfile} --checkpoint {input.vqvae} --shard {input.shard} "
        "--out {output.shard} --recon {output.recon} > {log} 2>&1"
