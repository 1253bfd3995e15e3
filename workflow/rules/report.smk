# Tables for `snakemake --report results/report.html` (vqvideo report-tables): FVD and KVD per resolution with
# FVD*/KVD* and the copy-last / reconstruction brackets, and PSNR/SSIM with the per-frame curve embedded, from the
# evaluation's JSON files and PNG.


rule report_tables:
    input:
        fvd=[LAYOUT.fvd(r) for r in config["evaluation"]["resolutions"]],
        quality=LAYOUT.quality,
        curve=LAYOUT.quality_per_frame,
    output:
        report(LAYOUT.report_tables, caption="../report/results.rst", category="Evaluation"),
    log:
        LAYOUT.log("report_tables"),
    params:
        configfile=CONFIGFILE,
    threads: rule_threads("report_tables")
    resources:
        **rule_resources("report_tables"),
    conda:
        "../../envs/data.yaml"
    shell:
        "vqvideo report-tables --configfile {params.configfile} --fvd {input.fvd} --quality {input.quality} "
        "--curve {input.curve} --out {output} > {log} 2>&1"
