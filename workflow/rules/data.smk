# The data stage: (demo videos ->) videos -> fixed-size clips in HDF5 shards, a manifest and a list of rejects.
# prepare_data is a checkpoint: later stages scatter one job per shard after listing {RESULTS}/data/shards
# (data_shard_numbers() in common.smk calls checkpoints.prepare_data.get()).

if config["demo"]["enabled"]:

    rule make_demo_data:
        output:
            directory(config["data"]["videos"]),
        log:
            LAYOUT.log("make_demo_data"),
        threads: rule_threads("make_demo_data")
        resources:
            **rule_resources("make_demo_data"),
        conda:
            "../../envs/data.yaml"
        shell:
            "vqvideo make-demo-data --configfile {CONFIGFILE} --out {output} --workers {threads} > {log} 2>&1"


if config["footage"]["enabled"]:

    # the real footage (vqvideo.data.footage): fetched once into ~/.cache/vqvideo/footage, then the start of each
    # video written to train/ and its end (footage.holdout) to val/
    localrules: fetch_footage

    rule fetch_footage:
        output:
            directory(config["data"]["videos"]),
        log:
            LAYOUT.log("fetch_footage"),
        params:
            configfile=CONFIGFILE,
        conda:
            "../../envs/data.yaml"
        shell:
            "vqvideo fetch-footage --configfile {params.configfile} --out {output} > {log} 2>&1"


checkpoint prepare_data:
    input:
        unpack(prepare_data_input),
    output:
        manifest=LAYOUT.manifest,
        rejects=LAYOUT.rejects,
        shards=directory(LAYOUT.data_shards),
    log:
        LAYOUT.log("prepare_data"),
    threads: config["data"]["workers"]  # decoding processes; Snakemake caps them at --cores
    resources:
        **rule_resources("prepare_data"),
    params:
        configfile=CONFIGFILE,
        out=lambda wildcards, output: Path(output.manifest).parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "vqvideo prepare-data --configfile {params.configfile} --out {params.out} --workers {threads} > {log} 2>&1"
