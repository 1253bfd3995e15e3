# Evaluation (vqvideo evaluate): FVD and KVD of the samples at each R of evaluation.resolutions (with FVD*/KVD*,
# the folds, the copy-last and reconstruction brackets and the sanity block) into fvd_{R}.json; per-frame
# PSNR/SSIM (samples, best of K, copy-last, reconstructions, the true-top diagnostic) and diversity into
# quality.json, and their curves into quality_per_frame.png.
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
        recon=recon_shards,
        manifest=LAYOUT.manifest,
    output:
        json=LAYOUT.quality,
        png=report(LAYOUT.quality_per_frame, caption="../report/quality_per_frame.rst", category="Evaluation"),
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
        "--copy-last {input.copy_last} --recon {input.recon} --manifest {input.manifest} --out {output.json} "
        "--plot {output.png} > {log} 2>&1"
