# The hierarchical VQ-VAE (vqvideo train-vqvae), then every data shard encoded into latent codes
# (vqvideo encode): one job per data shard, scattered over the shards that prepare_data made; the input
# functions latent_shards(split), recon_shards() and all_latents() in common.smk gather them.
import os


rule train_vqvae:
    input:
        manifest=LAYOUT.manifest,
    output:
        checkpoint=LAYOUT.vqvae_checkpoint,
        metrics=LAYOUT.vqvae / "metrics.json",
        grid=report(LAYOUT.vqvae / "recon.gif", caption="../report/vqvae.rst", category="VQ-VAE"),
        curves=report(LAYOUT.vqvae / "psnr.png", caption="../report/vqvae.rst", category="VQ-VAE"),
        loss=report(LAYOUT.vqvae / "loss.png", caption="../report/vqvae_loss.rst", category="VQ-VAE"),
        usage=report(LAYOUT.vqvae / "usage.png", caption="../report/vqvae_usage.rst", category="VQ-VAE"),
    log:
        LAYOUT.log("train_vqvae"),
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("train_vqvae")
    resources:
        **rule_resources("train_vqvae"),
    params:
        launch=launcher("train_vqvae", resume=LAYOUT.vqvae_checkpoint),
        configfile=CONFIGFILE,
        data=lambda wildcards, input: os.path.dirname(input.manifest),
        out=lambda wildcards, output: os.path.dirname(output.checkpoint),
    shell:
        "{params.launch} train-vqvae --configfile {params.configfile} --data {params.data} --out {params.out} > {log} 2>&1"


# the evaluation split also gets its reconstructions (FVD* compares samples with them)
ruleorder: encode_latents_eval > encode_latents


rule encode_latents:
    input:
        shard=LAYOUT.data_shard("{split}", "{i}"),
        vqvae=LAYOUT.vqvae_checkpoint,
        manifest=LAYOUT.manifest,
    output:
        LAYOUT.latent_shard("{split}", "{i}"),
    wildcard_constraints:
        split=r"[^/]+",
        i=r"\d{5}",
    log:
        LAYOUT.log("encode/{split}-{i}"),
    conda:
        "../../envs/torch.yaml"
    threads: rule_threads("encode_latents")
    resources:
        **rule_resources("encode_latents"),
    params:
        configfile=CONFIGFILE,
        augment=lambda w: " ".join(flag for flag, key in (("--mirror", "mirror_train"), ("--reverse", "reverse_train"))
                                   if w.split == "train" and config["encode"][key]),
    shell:
        "vqvideo encode --configfile {params.configfile} --checkpoint {input.vqvae} --shard {input.shard} "
        "--out {output} {params.augment} > {log} 2>&1"


rule encode_latents_eval:
    input:
        shard=LAYOUT.data_shard(EVAL_SPLIT_VQ, "{i}"),
        vqvae=LAYOUT.vqvae_checkpoint,
        manifest=LAYOUT.manifest,
    output:
        shard=LAYOUT.latent_shard(EVAL_SPLIT_VQ, "{i}"),
        recon=LAYOUT.recon_shard(EVAL_SPLIT_VQ, "{i}"),
    wildcard_constraints:
        i=r"\d{5}",
    log:
        LAYOUT.log(f"encode/{EVAL_SPLIT_VQ}-{{i}}"),
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
