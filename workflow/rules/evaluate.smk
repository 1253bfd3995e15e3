# Evaluation (vqvideo evaluate): FVD of the samples at each R of evaluation.resolutions (with FVD*, the folds
# and the copy-last and reconstruction brackets) into fvd_{R}.json, and PSNR/SSIM/diversity into quality.json.
# Inputs: every sample shard, every copy-last shard, the evaluation split's reconstructions (input functions
# sample_shards, copy_last_shards, recon_shards) and the real clips through the manifest.


rule fvd:
    input:
        samples=sample_shards,
        copy_last=copy_last_shards,
        recon=recon_shards,
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        f"{RESULTS}/fvd_{{resolution}}.json",
    wildcard_constraints:
        resolution=r"\d+",
    log:
        f"{RESULTS}/logs/evaluate/fvd_{{resolution}}.log",
    threads: rule_threads("fvd")
    resources:
        **rule_resources("fvd"),
    shell:
        "vqvideo evaluate --configfile {CONFIGFILE} --resolution {wildcards.resolution} > {log} 2>&1"


rule quality:
    input:
        samples=sample_shards,
        copy_last=copy_last_shards,
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        f"{RESULTS}/quality.json",
    log:
        f"{RESULTS}/logs/evaluate/quality.log",
    threads: rule_threads("quality")
    resources:
        **rule_resources("quality"),
    shell:
        "vqvideo evaluate --configfile {CONFIGFILE} --quality > {log} 2>&1"
