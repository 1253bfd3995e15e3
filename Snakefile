# vqvideo: Predicting Video with VQ-VAE, end to end. The paper's configuration is the default;
# `--configfile config/demo.yaml` runs the small CPU demo. Rules live in workflow/rules/.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/vqvae.smk"
include: "workflow/rules/priors.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/human_eval.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
