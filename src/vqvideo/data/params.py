"""The clip settings: how a video is cut into clips. The data stage, ``vqvideo reconstruct`` and the config's
``data`` section (:class:`vqvideo.config.DataConfig` extends :class:`Params`) all spell them here, once.

Standard library only: the config, which Snakemake reads while it builds the DAG, imports this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Params:
    """How a video is cut into clips: ``frames`` frames at ``fps``, ``resolution`` square, a clip every ``stride``
    frames (at most ``max_clips_per_video``); a folder of frames plays at ``frame_folder_fps``.

    The defaults are the schema's (``data.*``; tests/test_config.py fails when one disagrees)."""

    frames: int = 16
    fps: float = 25
    resolution: int = 256
    stride: int = 16
    max_clips_per_video: int | None = None
    frame_folder_fps: float = 25

    @classmethod
    def of(cls, settings) -> Params:
        """The clip settings of ``settings`` (a Params, a ``DataConfig``, any object with these attributes) as a
        plain Params, the frame rates as floats: the data stage hashes them into each shard's plan key, so
        ``fps: 25`` and ``fps: 25.0``, or a DataConfig's other keys, must not make another key."""
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)}
        return cls(**{**values, "fps": float(values["fps"]), "frame_folder_fps": float(values["frame_folder_fps"])})
