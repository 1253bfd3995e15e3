"""The clip settings: a DataConfig is a Params, and Params.of gives the same plan key whatever it is read from."""

import dataclasses

from vqvideo.config import config_from_dict
from vqvideo.data.params import Params


def test_a_config_gives_the_params_its_keys_say():
    cfg = config_from_dict({"data": {"fps": 30, "resolution": 64, "max_clips_per_video": 2, "workers": 1}})
    p = Params.of(cfg.data)
    assert type(p) is Params  # not the DataConfig: its other keys (videos, workers) are not clip settings
    assert p == Params(frames=16, fps=30.0, resolution=64, stride=16, max_clips_per_video=2, frame_folder_fps=25.0)
    # fps 30 (an int in YAML) and 30.0 make the same plan key (data/prepare.py hashes asdict(params))
    assert [type(v) for v in (p.fps, p.frame_folder_fps)] == [float, float]
    assert dataclasses.asdict(p) == dataclasses.asdict(Params.of(Params(fps=30.0, resolution=64, max_clips_per_video=2)))
