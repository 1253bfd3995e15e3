"""Typed configuration, built from a validated YAML file.

The JSON schema (``schemas/config.schema.yaml``) is the single source of defaults and allowed values; this
module validates a config against it (filling defaults) and turns it into the dataclasses below, whose own
defaults, like those of the models' constructors, repeat the schema's (tests/test_config.py fails when one
disagrees). Only the CLI
calls :func:`load_config`; models and stages take the dataclasses (or plain arguments) they need.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from vqvideo.data.params import Params
from vqvideo.errors import UserError
from vqvideo.layout import Layout

SCHEMA_PATH = Path(str(resources.files("vqvideo") / "schemas" / "config.schema.yaml"))


class ConfigError(UserError, ValueError):
    """A config that does not satisfy the schema; the message names the key."""


# --------------------------------------------------------------------------------------------- sections
@dataclass
class TrainConfig:
    batch_size: int = 16
    steps: int = 1_000_000
    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    grad_clip: float = 1.0
    amp: bool = True
    checkpoint_every: int = 1000
    log_every: int = 50
    eval_every: int = 5000
    eval_batches: int = 16
    num_workers: int = 4
    threads: int = 0
    accum_steps: int = 1


@dataclass
class DemoConfig:
    enabled: bool = False
    n_videos: int = 32
    seed: int = 0
    size: int = 64
    duration: float = 2.4
    val_fraction: float = 0.2


@dataclass
class FootageConfig:
    enabled: bool = False
    holdout: float = 0.45
    windows: int = 1


@dataclass
class DownloadConfig:
    enabled: bool = False
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    path_lists: dict[str, str] = field(default_factory=lambda: {
        split: f"https://s3.amazonaws.com/kinetics/600/{split}/k600_{split}_path.txt" for split in ("train", "val", "test")})
    annotations: dict[str, str] = field(default_factory=lambda: {
        "train": "https://s3.amazonaws.com/kinetics/600/annotations/train.txt",
        "val": "https://s3.amazonaws.com/kinetics/600/annotations/val.txt",
        "test": "https://s3.amazonaws.com/kinetics/600/annotations/test.csv"})
    archives: str = "data/kinetics600_targz"
    parallel: int = 4
    retries: int = 3
    timeout: float = 60
    keep_archives: bool = False


@dataclass(frozen=True)
class DataConfig(Params):
    """The clip settings (:class:`Params`'s fields, under the same keys) and where the videos are and how the
    stage runs. Frozen because :class:`Params` is (a dataclass cannot thaw its base)."""

    videos: str = "data/kinetics600"
    annotations: str | None = None
    default_split: str = "train"
    shard_size: int = 512
    workers: int = 4


@dataclass
class VQVAEModelConfig:
    in_channels: int = 3
    hidden: int = 128
    res_hidden: int = 32
    res_layers: int = 2
    codebook_size: int = 512
    codebook_dim: int = 64
    bottom_kernel: list[int] = field(default_factory=lambda: [4, 8, 8])
    bottom_stride: list[int] = field(default_factory=lambda: [2, 4, 4])
    top_kernel: list[int] = field(default_factory=lambda: [4, 4, 4])
    top_stride: list[int] = field(default_factory=lambda: [2, 2, 2])
    upsample_kernel: list[int] = field(default_factory=lambda: [4, 8, 8])
    upsample_stride: list[int] = field(default_factory=lambda: [2, 4, 4])
    beta: float = 0.25
    decay: float = 0.99
    epsilon: float = 1e-5
    restart_threshold: float = 1.0
    codebook_init: str = "random"
    bottom_mask_rate: float = 0.1
    bottom_sees_top: bool = True
    causal_encoder: bool = False
    time_padding: str = "zeros"


@dataclass
class VQVAEConfig:
    model: VQVAEModelConfig = field(default_factory=VQVAEModelConfig)
    crop: int | None = None
    flip: bool = False
    reverse: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class EncodeConfig:
    batch_size: int = 16
    predicted_latents: str = "full_clip"
    device: str = "auto"
    threads: int = 0
    mirror_train: bool = False
    reverse_train: bool = False


@dataclass
class TopPriorModelConfig:
    hidden: int = 512
    residual: int = 1024
    layers: int = 40
    attention_layers: int = 8
    heads: int = 8
    filter_size: int = 3
    dropout: float = 0.5
    embed_dim: int = 64
    cond_channels: int = 256
    cond_hidden: int = 512
    cond_residual: int = 128
    cond_layers: int = 4
    past_stream: bool = True
    copy_previous: bool = False


@dataclass
class TopPriorConfig:
    model: TopPriorModelConfig = field(default_factory=TopPriorModelConfig)
    corrupt_inputs: float = 0.0
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class BottomPriorModelConfig:
    hidden: int = 512
    residual: int = 1024
    layers: int = 20
    attention_layers: int = 4
    heads: int = 8
    filter_size: int = 5
    dropout: float = 0.0
    embed_dim: int = 64
    cond_channels: int = 256
    cond_hidden: int = 1024
    cond_residual: int = 256
    cond_blocks: int = 20
    window: int = 4
    copy_previous: bool = False


@dataclass
class BottomPriorConfig:
    model: BottomPriorModelConfig = field(default_factory=BottomPriorModelConfig)
    slices_per_clip: int = 1
    corrupt_inputs: float = 0.0
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class SamplingConfig:
    cond_frames: int = 4
    samples_per_clip: int = 1
    temperature: float = 1.0
    batch_size: int = 8
    seed: int = 0
    max_clips: int | None = None
    method: str = "incremental"
    device: str = "auto"
    threads: int = 0
    grid_clips: int = 4
    fps: float = 8
    true_top_diagnostic: bool = True


@dataclass
class EvaluationConfig:
    split: str = "val"
    resolutions: list[int] = field(default_factory=lambda: [64, 256])
    folds: int = 2
    seed: int = 0
    frames: str = "all"
    batch_size: int = 8
    device: str = "auto"
    threads: int = 0


@dataclass
class HumanEvalConfig:
    n_pairs: int = 30
    seed: int = 0
    name_a: str = "ours"
    name_b: str = "copy_last"
    resolution: int | None = 64
    upscale: int = 4
    fps: float | None = None
    ratings_dir: str = "ratings"
    min_judgements: int = 13
    bootstrap: int = 2000


@dataclass
class ResourcesConfig:
    nodes: int = 1
    gpus: int = 0
    tasks: int = 1
    cpus_per_task: int = 1
    mem_mb: int = 4000
    runtime: int = 60
    partition: str | None = None
    gres: str | None = None
    constraint: str | None = None
    slurm_extra: str | None = None


@dataclass
class SlurmConfig:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: str | None = None
    stop_margin: float = 10
    rendezvous_timeout: float = 600


@dataclass
class Config:
    seed: int = 0
    results: str = "results"
    targets: list[str] | None = None  # rule all's inputs under results (only the Snakefile reads it)
    demo: DemoConfig = field(default_factory=DemoConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    footage: FootageConfig = field(default_factory=FootageConfig)
    data: DataConfig = field(default_factory=DataConfig)
    vqvae: VQVAEConfig = field(default_factory=VQVAEConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    top_prior: TopPriorConfig = field(default_factory=TopPriorConfig)
    bottom_prior: BottomPriorConfig = field(default_factory=BottomPriorConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    human_eval: HumanEvalConfig = field(default_factory=HumanEvalConfig)
    resources: dict[str, ResourcesConfig] = field(default_factory=dict)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def hash(self) -> str:
        """Short content hash of the validated config (written into results so they say what made them)."""
        return config_hash(self.raw)

    @property
    def results_dir(self) -> Path:
        return Path(self.results)

    @property
    def layout(self) -> Layout:
        """Where every result lives under ``results`` (see :mod:`vqvideo.layout`)."""
        return Layout(self.results)



# --------------------------------------------------------------------------------------------- loading
def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class, root: dict):
    """A validator that also fills ``default`` values in place (the jsonschema FAQ recipe).

    Only local ``#/$defs/NAME`` references occur in our schema; they are looked up in ``root``.
    """
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "$ref" in sub:
                    sub = root["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, json.loads(json.dumps(sub["default"])))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = f"'{key}'" if error.absolute_path else "the top level"
        return f"unknown config key(s) {', '.join(repr(e) for e in extra)} in {where}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"config key '{key}' = {error.instance!r} is not one of {error.validator_value}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"config key '{key}' = {error.instance!r} is out of range ({error.validator} {error.validator_value})"
    return f"config key '{key}': {error.message}"


def validate(raw: dict) -> dict:
    """Validate ``raw`` against the schema, fill defaults, and return it; raise ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError("a config file must hold a mapping of keys")
    schema = load_schema()
    cls = _with_defaults(jsonschema.validators.validator_for(schema), schema)
    errors = sorted(cls(schema).iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(_describe(e) for e in errors))
    return raw


def _build(cls, data):
    """Turn a validated mapping into the dataclass ``cls`` (recursively)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name == "raw" or f.name not in data:
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(tp, value):
    if dataclasses.is_dataclass(tp):
        return _build(tp, value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and args and dataclasses.is_dataclass(args[1]):
        return {k: _build(args[1], v) for k, v in value.items()}
    if origin is tuple:
        return tuple(value)
    return value


def check_consistency(raw: dict) -> None:
    """Constraints between keys that the schema cannot state; raise ConfigError naming the key."""
    if raw["demo"]["enabled"] and raw["footage"]["enabled"]:
        raise ConfigError("config keys 'demo.enabled' and 'footage.enabled' are both true: each makes data.videos; "
                          "enable one")
    model, crop = raw["vqvae"]["model"], raw["vqvae"]["crop"]
    if crop is not None:
        step = [b * t for b, t in zip(model["bottom_stride"][1:], model["top_stride"][1:])]  # [h, w]
        if any(crop % s for s in step) or crop > raw["data"]["resolution"]:
            raise ConfigError(f"config key 'vqvae.crop' = {crop}: must be a multiple of the spatial strides "
                              f"{step} (bottom x top) and at most data.resolution = {raw['data']['resolution']}")


def config_from_dict(raw: dict) -> Config:
    raw = validate(json.loads(json.dumps(raw)))
    check_consistency(raw)
    cfg = _build(Config, raw)
    cfg.raw = raw
    return cfg


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge dotted ``overrides`` ({"data.fps": 30}), validate and build. ``path=None`` gives the defaults."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        raw = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config_from_dict(raw)


def config_hash(raw: dict) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:12]
