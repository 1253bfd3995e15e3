# Tables for `snakemake --report results/report.html` (vqvideo report-tables): FVD per resolution with FVD*
# and the copy-last / reconstruction brackets, and PSNR/SSIM, from the evaluation's JSON files.


rule report_tables:
    input:
        fvd=expand(f"{RESULTS}/fvd_{{resolution}}.json", resolution=config["evaluation"]["resolutions"]),
        quality=f"{RESULTS}/quality.json",
    output:
        report(f"{RESULTS}/report/results.html", caption="../report/results.rst", category="Evaluation"),
    log:
        f"{RESULTS}/logs/report_tables.log",
    params:
        configfile=CONFIGFILE,
    threads: rule_threads("report_tables")
    resources:
        **rule_resources("report_tables"),
    conda:
        "../../envs/data.yaml"
    shell:
        "vqvideo report-tables --configfile {params.configfile} --out {output} > {log} 2>&1"
