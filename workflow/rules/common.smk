# Validation, paths and input functions shared by every rule. Rules stay thin: inputs, outputs,
# resources from config, one `vqvideo ...` shell line.
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml", set_default=True)

RESULTS = config["results"]
CONFIGFILE = workflow.overwrite_configfiles[-1] if workflow.overwrite_configfiles else "config/config.yaml"


def final_outputs():
    """The default target: each stage adds its end products here."""
    return []
