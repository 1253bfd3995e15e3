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


COMMANDS = [add_check_config]


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
