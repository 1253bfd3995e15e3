# Tables for `snakemake --report results/report.html` (vqvideo report-tables): FVD per resolution with FVD*
# and the copy-last / reconstruction brackets, and PSNR/SSIM, from the evaluation's JSON files.


rule report_tables:
    input:
        fvd=[LAYOUT.fvd(r) for r in config["evaluation"]["resolutions"]],
        quality=LAYOUT.quality,
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
        "--out {output} > {log} 2>&1"
