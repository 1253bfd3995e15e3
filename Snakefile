# vqvideo: Predicting Video with VQ-VAE, end to end. The paper's configuration is the default;
# `--configfile config/demo.yaml` runs the small CPU demo. Rules live in workflow/rules/.
from snakemake.utils import min_version

min_version("8.20")


# The paper's config only when no --configfile is given: Snakemake would otherwise merge a --configfile over
# it, and the demo would inherit the paper's keys (its 8-GPU resources, say) that `vqvideo --configfile` never
# sees. Keys a config file leaves out come from the schema's defaults, for the rules and the CLI alike.
if not workflow.overwrite_configfiles:

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
include: "workflow/rules/report.smk"


# config `targets` (paths under results) when a config names them, e.g. config/real.yaml's VQ-VAE; else the whole DAG
rule all:
    input:
        default_targets(),
    default_target: True
