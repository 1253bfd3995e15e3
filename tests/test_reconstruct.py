"""vqvideo reconstruct: a VQ-VAE checkpoint on real footage, its report, its side-by-side videos, the data
settings' precedence (--resolution, --configfile, the checkpoint's record) and its refusals."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch

from vqvideo.cli import main
from vqvideo.data.video import load_frames
from vqvideo.metrics.quality import psnr
from vqvideo.models.vqvae import VQVAE, output_to_video, video_to_input
from vqvideo.reconstruct import side_by_side
from vqvideo.runtime.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = dict(hidden=8, res_hidden=4, res_layers=1, codebook_size=16, codebook_dim=4)
RECORDED = {"frames": 16, "fps": 25, "resolution": 32, "stride": 16, "max_clips_per_video": None,
            "frame_folder_fps": 25}


def _checkpoint(path, data_config=RECORDED):
    torch.manual_seed(0)
    model = VQVAE(**MODEL).eval()
    state = {"kind": "vqvae", "model": model.state_dict(), "model_config": MODEL, "step": 0}
    if data_config is not None:
        state["data_config"] = data_config
    save_checkpoint(path, state)
    return model


def _frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_reconstruct_real_footage_reports_every_clip_and_draws_side_by_side(footage, tmp_path, capsys):
    model = _checkpoint(tmp_path / "vqvae.pt")
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "carphone.mp4").symlink_to(footage["carphone_pristine.mp4"])
    (folder / "notes.txt").write_text("not a video")  # a folder is searched as the data stage searches
    out = tmp_path / "out"
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "vqvae.pt"), "--videos", str(folder),
                 "--out", str(out)]) == 0
    assert "6 clips" in capsys.readouterr().out
    report = json.loads((out / "reconstruct.json").read_text())
    assert report["clips"] == 6 and [v["clips"] for v in report["videos"]] == [6]
    video = report["videos"][0]
    assert video["path"] == str(folder / "carphone.mp4") and set(report["mean"]) == {"psnr", "ssim", "psnr_masked"}
    assert report["settings"]["resolution"] == 32 and report["settings"]["source"] == "the checkpoint"
    # the clips are the data stage's (29.97 fps -> 25, 16 frames every 16), and PSNR is per clip, then averaged
    frames = load_frames(footage["carphone_pristine.mp4"], 25, 32)
    clips = torch.from_numpy(np.stack([frames[s:s + 16] for s in range(0, 100 - 15, 16)]))
    with torch.no_grad():
        rec = output_to_video(model.reconstruct(video_to_input(clips)))
    per_clip = psnr(rec, clips).numpy()
    assert [c["psnr"] for c in video["clip_metrics"]] == pytest.approx(per_clip.tolist(), abs=1e-6)
    assert report["mean"]["psnr"] == pytest.approx(per_clip.mean(), abs=1e-6)
    lo, hi = report["spread"]["psnr"]["ci95"]
    assert lo <= report["mean"]["psnr"] <= hi and report["spread"]["psnr"]["std"] > 0
    # original | reconstruction | error x4, every clip once (stride 16 = 16 frames: none overlap)
    gif = out / video["gif"]
    with __import__("PIL.Image").Image.open(gif) as im:
        assert im.size == (3 * 32 + 2 * 2, 32) and im.n_frames == 6 * 16
    mp4 = _frames(out / video["mp4"])
    assert len(mp4) == 96 and mp4[0].shape == (32, 100, 3)
    left = mp4[17][:, :32].astype(float)  # clip 1, frame 1, original (H.264: near, not equal)
    assert np.abs(left - clips[1, 1].numpy()).mean() < 8 < np.abs(left - clips[4, 1].numpy()).mean()


def test_side_by_side_error_is_four_times_the_difference_clipped():
    a = np.full((2, 16, 4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[0, :, 0, 0] = 110  # |diff| 10 -> 40
    b[0, :, 1, 1] = 0  # |diff| 100 -> 400, clipped at 255
    video = side_by_side(a, b, every=1)
    assert video.shape == (32, 4, 3 * 4 + 2 * 2, 3)
    error = video[:16, :, 12:]
    assert (error[:, 0, 0] == 40).all() and (error[:, 1, 1] == 255).all() and error[:, 2, 2].max() == 0


@pytest.mark.slow  # three reconstructions of a real clip (~6 s of CPU)
def test_resolution_flag_beats_configfile_beats_checkpoint(footage, tmp_path):
    _checkpoint(tmp_path / "vqvae.pt")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {resolution: 16, stride: 32}\n")
    runs = {"ckpt": [], "config": ["--configfile", str(cfg)], "flag": ["--configfile", str(cfg), "--resolution", "24"]}
    for name, flags in runs.items():
        assert main(["reconstruct", "--checkpoint", str(tmp_path / "vqvae.pt"), "--videos",
                     str(footage["carphone_pristine.mp4"]), "--out", str(tmp_path / name), *flags]) == 0
    settings = {n: json.loads((tmp_path / n / "reconstruct.json").read_text())["settings"] for n in runs}
    assert [settings[n]["resolution"] for n in runs] == [32, 16, 24]
    assert [settings[n]["stride"] for n in runs] == [16, 32, 32]  # the rest: the config's over the checkpoint's
    assert _frames(tmp_path / "flag" / "carphone_pristine.mp4")[0].shape[0] == 24


def test_unknown_data_settings_and_missing_inputs_are_refused_in_one_line(tmp_path, capsys):
    from video_helpers import write_index_video

    _checkpoint(tmp_path / "old.pt", data_config=None)  # a checkpoint from before train-vqvae recorded them
    video = write_index_video(tmp_path / "v.mp4", 20)
    out = tmp_path / "out"
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "old.pt"), "--videos", str(video),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no data settings" in err and "--resolution" in err
    assert not out.exists()
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "old.pt"), "--videos", str(tmp_path / "nope.mp4"),
                 "--out", str(out), "--resolution", "32"]) == 2
    assert "nope.mp4: no such file or folder" in capsys.readouterr().err
    # --resolution alone is enough: frames, fps and stride then come from the schema's defaults
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "old.pt"), "--videos", str(video),
                 "--out", str(out), "--resolution", "32"]) == 0
    assert json.loads((out / "reconstruct.json").read_text())["clips"] == 1
