"""The ``vqvideo`` command: one subcommand per pipeline stage.

This is the only module that reads config files. Every subcommand takes ``--configfile``; explicit flags
override the config keys they name (``FLAG_KEYS``). A bad config is refused here, before any work starts.
Each ``add_*`` function declares one subcommand; its handler builds the config and calls one stage function.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vqvideo.config import Config, ConfigError, load_config


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


def add_sample(sub):
    p = _parser(sub, "sample", "sample 12 predicted frames for each conditioning clip of the evaluation split")
    p.add_argument("--method", choices=["incremental", "naive", "copy-last"], default=None,
                   help="sampler (sampling.method), or copy-last: the copy-last-frame baseline into "
                        "results/baselines/copy_last/")
    p.add_argument("--shard", type=int, default=None, help="only this shard (default: all)")
    p.add_argument("--samples", dest="samples_per_clip", type=int, default=None, help="samples per clip")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--device", default=None, help="auto, cpu, cuda, ...")

    def run(args):
        copy = args.method == "copy-last"
        keys = {k: f"sampling.{k}" for k in
                ("samples_per_clip", "temperature", "seed", "batch_size", "max_clips", "device")}
        if not copy:
            keys["method"] = "sampling.method"
        cfg = _load(args, keys)
        if copy:
            from vqvideo.sampling.baseline import run_copy_last

            paths = run_copy_last(cfg, args.shard)
        else:
            from vqvideo.sampling.pipeline import run_sampling

            paths = run_sampling(cfg, args.shard)
        for path in paths:
            print(path)
        return 0

    p.set_defaults(func=run)


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


COMMANDS = [add_check_config, add_sample, add_predict]


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
    except ConfigError as e:
        print(f"vqvideo {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
