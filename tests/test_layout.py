"""vqvideo.layout: one place spells the results paths; the workflow's rules and the CLI both take them from it."""

import re
from pathlib import Path

from vqvideo.config import load_config
from vqvideo.layout import Layout

ROOT = Path(__file__).resolve().parents[1]


def test_shard_numbers_and_wildcards():
    layout = Layout("res")
    assert layout.data_shard("val", 3) == Path("res/data/shards/val-00003.h5")
    assert layout.latent_shard("val", "{i}") == Path("res/latents/val/shard-{i}.h5")
    assert layout.copy_last_shard(12) == Path("res/baselines/copy_last/shard-00012.h5")
    assert layout.sample_grid("00001", "gif") == Path("res/samples/grid-00001.gif")
    assert layout.log("encode/{split}-{i}") == Path("res/logs/encode/{split}-{i}.log")


def test_config_layout_follows_the_results_key():
    assert load_config(None, {"results": "elsewhere"}).layout.manifest == Path("elsewhere/data/manifest.csv")


def test_no_rule_spells_a_results_path():
    """Every path under RESULTS in workflow/ comes from LAYOUT (common.smk), none is written out in a rule."""
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        code = "\n".join(line for line in smk.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"\{RESULTS\}/|RESULTS\s*/\s*[\"']|[\"']baselines", code), smk.name
