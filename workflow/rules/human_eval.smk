# Human evaluation (paper §5.2, Table 1). export_pairs writes the blind rating page for raters
# (RESULTS/human_eval/page/) and the key (RESULTS/human_eval/key.csv, keep it private) from our samples and
# the copy-last baseline. The raters' downloaded ratings.csv files go into the ratings folder,
# RESULTS/human_eval/<human_eval.ratings_dir>/ (one file per rater, any name ending in .csv); human_eval scores
# them, and is part of the default target only once that folder holds a CSV (human_eval_outputs() and
# ratings_files() in common.smk).


rule export_pairs:
    input:
        samples=sample_shards,
        copy_last=copy_last_shards,
    output:
        page=LAYOUT.human_eval_page,
        key=LAYOUT.human_eval_key,
    log:
        LAYOUT.log("human_eval/export_pairs"),
    params:
        configfile=CONFIGFILE,
        a=LAYOUT.samples,
        b=LAYOUT.copy_last,
        out=lambda wildcards, output: str(Path(output.key).parent),
    threads: rule_threads("export_pairs")
    resources:
        **rule_resources("export_pairs"),
    conda:
        "../../envs/eval.yaml"
    shell:
        "vqvideo export-pairs --configfile {params.configfile} --a {params.a} --b {params.b} --out {params.out}"
        " > {log} 2>&1"


rule human_eval:
    input:
        key=LAYOUT.human_eval_key,
        page=LAYOUT.human_eval_page,
        ratings=ratings_files,
    output:
        json=LAYOUT.human_eval_json,
        chart=report(LAYOUT.human_eval_chart, caption="../report/human_eval.rst", category="Human evaluation"),
    log:
        LAYOUT.log("human_eval/analyze_ratings"),
    params:
        configfile=CONFIGFILE,
    threads: rule_threads("human_eval")
    resources:
        **rule_resources("human_eval"),
    conda:
        "../../envs/eval.yaml"
    shell:
        "vqvideo analyze-ratings --configfile {params.configfile} --key {input.key} --ratings {input.ratings}"
        " --json {output.json} --chart {output.chart} > {log} 2>&1"
