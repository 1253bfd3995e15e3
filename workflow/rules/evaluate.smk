# Evaluation (vqvideo evaluate): FVD of the samples at each R of evaluation.resolutions (with FVD*, the folds
# and the copy-last and reconstruction brackets) into fvd_{R}.json, and PSNR/SSIM/diversity into quality.json.
# Inputs: every sample shard, every copy-last shard, the evaluation split's reconstructions (input functions
# sample_shards, copy_last_shards and recon_shards in common.smk) and the real clips through the manifest.
# I3D features are cached under RESULTS/evaluation/features/, keyed by the content of the videos.


rule fvd:
    input:
        samples=sample_shards,
        copy_last=copy_last_shards,
        recon=recon_shards,
        manifest=LAYOUT.manifest,
    output:
        LAYOUT.fvd("{resolution}"),
    wildcard_constraints:
        resolution=r"\d+",
    log:
        LAYOUT.log("evaluate/fvd_{resolution}"),
    params:
        configfile=CONFIGFILE,
    threads: rule_threads("fvd")
    resources:
        **rule_resources("fvd"),
    conda:
        "../../envs/eval.yaml"
    shell:
        "vqvideo evaluate --configfile {params.configfile} --resolution {wildcards.resolution} "
        "--samples {input.samples} --copy-last {input.copy_last} --recon {input.recon} --manifest {input.manifest} "
        "--out {output} > {log} 2>&1"


rule quality:
    input:
        samples=sample_shards,
        copy_last=copy_last_shards,
        manifest=LAYOUT.manifest,
    output:
        LAYOUT.quality,
    log:
        LAYOUT.log("evaluate/quality"),
    params:
        configfile=CONFIGFILE,
    threads: rule_threads("quality")
    resources:
        **rule_resources("quality"),
    conda:
        "../../envs/eval.yaml"
    shell:
        "vqvideo evaluate --configfile {params.configfile} --quality --samples {input.samples} "
        "--copy-last {input.copy_last} --manifest {input.manifest} --out {output} > {log} 2>&1"
