"""The config is validated against the schema, with defaults from the schema, and bad keys are named."""

from pathlib import Path

import pytest
import yaml

from vqvideo.cli import main
from vqvideo.config import ConfigError, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.data.frames == 16


def test_defaults_come_from_schema():
    cfg = config_from_dict({})
    assert cfg.data.fps == 25 and cfg.data.resolution == 256
    assert cfg.vqvae.train.batch_size == 16


@pytest.mark.parametrize(
    "raw, names",
    [
        ({"data": {"fpss": 3}}, ["fpss", "data", "fps"]),
        ({"data": {"fps": -1}}, ["data.fps", "range"]),
        ({"vqvae": {"train": {"lrr": 1}}}, ["lrr", "vqvae.train"]),
        ({"evaluation": {"resolutions": "64"}}, ["evaluation.resolutions"]),
        ({"nonsense": 1}, ["nonsense"]),
        ({"vqvae": {"crop": 60}}, ["vqvae.crop", "[8, 8]"]),                           # not a multiple of 4 x 2
        ({"data": {"resolution": 64}, "vqvae": {"crop": 128}}, ["vqvae.crop", "64"]),   # larger than the frames
    ],
)
def test_bad_keys_are_refused_by_name(raw, names):
    with pytest.raises(ConfigError) as e:
        config_from_dict(raw)
    for name in names:
        assert name in str(e.value)


def test_cli_refuses_bad_config_before_work(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"resolutoin": 64}}))
    assert main(["check-config", "--configfile", str(bad)]) == 2
    assert "resolutoin" in capsys.readouterr().err


def test_overrides_win(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"data": {"fps": 30}}))
    assert load_config(f, {"data.fps": 12}).data.fps == 12
