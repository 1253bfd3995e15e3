# Kinetics-600 from the CVD Foundation (vqvideo download-kinetics600): tarballs fetched (resumable, checked)
# and extracted into data.videos as {split}/{label}/*.mp4 plus data.videos/annotations/{split}.csv.
# In the DAG only with download.enabled: prepare_data then waits for complete.json (download_marker() in
# common.smk). Users who already have a copy leave download.enabled false and point data.videos at it.


rule download_kinetics600:
    output:
        f"{config['download']['archives']}/complete.json",
    log:
        LAYOUT.log("download_kinetics600"),
    params:
        configfile=CONFIGFILE,
    threads: rule_threads("download_kinetics600")
    resources:
        **rule_resources("download_kinetics600"),
    conda:
        "../../envs/data.yaml"
    shell:
        "vqvideo download-kinetics600 --configfile {params.configfile} > {log} 2>&1"
