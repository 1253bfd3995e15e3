# The two PixelCNN priors (vqvideo train-prior), train_top_prior and train_bottom_prior, written once: trained on
# the cached latents only. Both depend on the latent shards alone, so Snakemake runs them in parallel; the input
# function latent_shards(split) in common.smk waits for the prepare_data checkpoint.
import os

from vqvideo.layout import PRIOR_LEVELS


for level in PRIOR_LEVELS:

    rule:
        name:
            f"train_{level}_prior"
        input:
            latents=lambda w: latent_shards("train") + latent_shards(EVAL_SPLIT_VQ),
        output:
            checkpoint=LAYOUT.prior_checkpoint(level),
            metrics=LAYOUT.prior(level) / "metrics.json",
            loss=report(LAYOUT.prior(level) / "loss.png", caption="../report/priors.rst", category="Priors"),
            bits=report(LAYOUT.prior(level) / "bits.png", caption="../report/priors.rst", category="Priors"),
        log:
            LAYOUT.log(f"train_{level}_prior"),
        conda:
            "../../envs/torch.yaml"
        threads: rule_threads(f"train_{level}_prior")
        resources:
            **rule_resources(f"train_{level}_prior"),
        params:
            level=level,
            launch=launcher(f"train_{level}_prior", resume=LAYOUT.prior_checkpoint(level)),
            configfile=CONFIGFILE,
            latents=lambda wildcards, input: os.path.dirname(os.path.dirname(input.latents[0])),
            out=lambda wildcards, output: os.path.dirname(output.checkpoint),
        shell:
            "{params.launch} train-prior --level {params.level} --configfile {params.configfile} "
            "--latents {params.latents} --out {params.out} > {log} 2>&1"
