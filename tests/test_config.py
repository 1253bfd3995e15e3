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
    assert not cfg.vqvae.flip and not cfg.vqvae.reverse  # augmentation changes training: off unless asked


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
        ({"vqvae": {"flip": "yes"}}, ["vqvae.flip"]),
        ({"vqvae": {"reverse": 1}}, ["vqvae.reverse"]),
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


# ------------------------------------------------------------------------------- one source of defaults
def _schema_section(schema, path):
    defs = schema["$defs"]

    def resolve(node):
        return defs[node["$ref"].rsplit("/", 1)[-1]] if "$ref" in node else node

    node = schema
    for key in path:
        node = resolve(node["properties"][key])
    return {k: resolve(v) for k, v in node.get("properties", {}).items()}, resolve


def test_constructor_and_dataclass_defaults_are_the_schemas():
    """The schema is the source of every default; a model constructor or a dataclass that says otherwise fails."""
    import dataclasses
    import inspect

    from vqvideo.config import Config, load_schema
    from vqvideo.models.bottom_prior import BottomPrior
    from vqvideo.models.top_prior import TopPrior
    from vqvideo.models.vqvae import VQVAE

    schema = load_schema()

    def plain(v):
        return list(v) if isinstance(v, tuple) else v

    wrong = []
    for cls, path in ((VQVAE, ["vqvae", "model"]), (TopPrior, ["top_prior", "model"]),
                      (BottomPrior, ["bottom_prior", "model"])):
        props, _ = _schema_section(schema, path)
        for name, p in inspect.signature(cls).parameters.items():
            if name in props and p.default is not inspect.Parameter.empty and "default" in props[name] \
                    and plain(p.default) != props[name]["default"]:
                wrong.append(f"{cls.__name__}({name}={p.default!r}), schema {'.'.join(path)}.{name}: "
                             f"{props[name]['default']!r}")

    def walk(obj, path):
        props, _ = _schema_section(schema, path) if path else _schema_section(schema, [])
        for f in dataclasses.fields(obj):
            if f.name in ("raw", "resources"):
                continue
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, path + [f.name])
            elif "default" in props.get(f.name, {}) and plain(value) != props[f.name]["default"]:
                wrong.append(f"{type(obj).__name__}.{f.name} = {value!r}, schema {'.'.join(path + [f.name])}: "
                             f"{props[f.name]['default']!r}")

    walk(Config(), [])
    assert not wrong, "\n".join(wrong)
