"""Where every result lives under ``RESULTS`` (the ``results`` config key): the one place these paths are spelled.

``workflow/rules/common.smk`` builds its rules' inputs and outputs from :class:`Layout`, and the CLI's defaults
come from it too, so Snakemake's DAG and what the code reads cannot drift apart. Shard numbers may be given
as ints (formatted ``{i:05d}``) or as strings such as ``"{i}"`` (a Snakemake wildcard, kept as it is).

    RESULTS/data/manifest.csv, rejects.csv, shards/{split}-{i}.h5      prepare-data
    RESULTS/vqvae/checkpoint.pt, metrics.json, ...                      train-vqvae
    RESULTS/latents/{split}/shard-{i}.h5, recon-{i}.h5                  encode
    RESULTS/priors/{top,bottom}/checkpoint.pt, metrics.json, ...        train-prior
    RESULTS/samples/shard-{i}.h5, grid-{i}.gif, grid-{i}.mp4            sample
    RESULTS/baselines/copy_last/shard-{i}.h5                            sample --method copy-last
    RESULTS/fvd_{R}.json, quality.json, quality_per_frame.png, features/ evaluate
    RESULTS/human_eval/page/, key.csv, <ratings_dir>/                   export-pairs (raters fill the ratings)
    RESULTS/human_eval.json, human_eval.png                             analyze-ratings
    RESULTS/report/results.html                                         report-tables
    RESULTS/logs/                                                       the rules' logs
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PRIOR_LEVELS = ("top", "bottom")
# inside a data folder (RESULTS/data, or any --out of prepare-data): the manifest and the clip shards
MANIFEST = "manifest.csv"
SHARDS = "shards"


def shard_name(i: int | str) -> str:
    """``3`` -> ``"00003"``; a string (a wildcard such as ``"{i}"``, or ``"00003"``) stays as it is."""
    return f"{i:05d}" if isinstance(i, int) else str(i)


def data_shard(data: str | Path, split: str, i: int | str) -> Path:
    """Clip shard ``i`` of ``split`` in the data folder ``data``."""
    return Path(data) / SHARDS / f"{split}-{shard_name(i)}.h5"


@dataclass(frozen=True)
class Layout:
    """The results tree rooted at ``root``; every method returns a :class:`~pathlib.Path`."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    # ------------------------------------------------------------------------------------------- data
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifest(self) -> Path:
        return self.data / MANIFEST

    @property
    def rejects(self) -> Path:
        return self.data / "rejects.csv"

    @property
    def data_shards(self) -> Path:
        return self.data / SHARDS

    def data_shard(self, split: str, i: int | str) -> Path:
        return data_shard(self.data, split, i)

    # ------------------------------------------------------------------------------------------- VQ-VAE
    @property
    def vqvae(self) -> Path:
        return self.root / "vqvae"

    @property
    def vqvae_checkpoint(self) -> Path:
        return self.vqvae / "checkpoint.pt"

    # ------------------------------------------------------------------------------------------- latents
    @property
    def latents(self) -> Path:
        return self.root / "latents"

    def latent_shard(self, split: str, i: int | str) -> Path:
        return self.latents / split / f"shard-{shard_name(i)}.h5"

    def recon_shard(self, split: str, i: int | str) -> Path:
        return self.latents / split / f"recon-{shard_name(i)}.h5"

    # ------------------------------------------------------------------------------------------- priors
    def prior(self, level: str) -> Path:
        return self.root / "priors" / level

    def prior_checkpoint(self, level: str) -> Path:
        return self.prior(level) / "checkpoint.pt"

    # ------------------------------------------------------------------------------------------- samples
    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def sample_shard(self, i: int | str) -> Path:
        return self.samples / f"shard-{shard_name(i)}.h5"

    def sample_grid(self, i: int | str, ext: str) -> Path:
        """``ext``: ``"gif"`` or ``"mp4"``."""
        return self.samples / f"grid-{shard_name(i)}.{ext}"

    @property
    def copy_last(self) -> Path:
        return self.root / "baselines" / "copy_last"

    def copy_last_shard(self, i: int | str) -> Path:
        return self.copy_last / f"shard-{shard_name(i)}.h5"

    # ------------------------------------------------------------------------------------------- evaluation
    def fvd(self, resolution: int | str) -> Path:
        return self.root / f"fvd_{resolution}.json"

    @property
    def quality(self) -> Path:
        return self.root / "quality.json"

    @property
    def quality_per_frame(self) -> Path:
        return self.root / "quality_per_frame.png"

    @property
    def feature_cache(self) -> Path:
        return self.root / "evaluation" / "features"

    # ------------------------------------------------------------------------------------------- human eval
    @property
    def human_eval(self) -> Path:
        return self.root / "human_eval"

    @property
    def human_eval_key(self) -> Path:
        return self.human_eval / "key.csv"

    @property
    def human_eval_page(self) -> Path:
        return self.human_eval / "page" / "index.html"

    def ratings(self, ratings_dir: str) -> Path:
        return self.human_eval / ratings_dir

    @property
    def human_eval_json(self) -> Path:
        return self.root / "human_eval.json"

    @property
    def human_eval_chart(self) -> Path:
        return self.root / "human_eval.png"

    # ------------------------------------------------------------------------------------------- report, logs
    @property
    def report_tables(self) -> Path:
        return self.root / "report" / "results.html"

    def log(self, name: str) -> Path:
        """``logs/<name>.log``; ``name`` may hold a folder (``"encode/{split}-{i}"``)."""
        return self.root / "logs" / f"{name}.log"
