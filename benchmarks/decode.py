"""Data stage speed: decode + resample + resize (one process) against the ffmpeg command line, and Dataset reads.

    python benchmarks/decode.py [--seconds 6] [--resolution 64] [--repeats 3]

Makes 1280x720 H.264 files (25 and 60 fps, ffmpeg's testsrc2 pattern), then times on the same files, in the same
run: our ``load_frames`` (PyAV threaded decoding, timestamp resampling to 25 fps, swscale area resize to the
short side, centre crop), the ``ffmpeg`` CLI doing the same (``fps=25,scale=...:flags=area,crop``) to rawvideo,
and, for reference, PyAV with full-frame arrays resized in torch (antialiased bilinear). Ratio > 1: faster than
ffmpeg. Note that the ffmpeg CLI is the system's (Debian: 5.1) while PyAV bundles its own, newer FFmpeg.
Then clips/s read by ``ClipDataset`` through a DataLoader (batch 8, shuffled) from real shards; with
``num_workers=0`` the DataLoader's ``torch.stack`` in the main process dominates on a busy machine.
Best of ``--repeats``.
Writes benchmarks/results/decode.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch


def make_input(path: Path, fps: int, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={fps}",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def ours(path: Path, res: int) -> int:
    from vqvideo.data.video import load_frames

    return len(load_frames(path, 25, res))


def ffmpeg_cli(path: Path, res: int) -> int:
    from vqvideo.data.video import scaled_size

    w, h = scaled_size(1280, 720, res)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-threads", "0", "-i", str(path), "-vf",
                          f"fps=25,scale={w}:{h}:flags=area,crop={res}:{res}", "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-"], check=True, capture_output=True).stdout
    return len(raw) // (res * res * 3)


def torch_resize(path: Path, res: int) -> int:
    """Full-frame arrays from PyAV, resized in torch (the slow path the issue measured); no resampling."""
    from vqvideo.data.video import scaled_size

    w, h = scaled_size(1280, 720, res)
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            x = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)[None].float()
            y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True)
            y0, x0 = (h - res) // 2, (w - res) // 2
            y[0, :, y0:y0 + res, x0:x0 + res].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
            n += 1
    return n


def source_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.demux(c.streams.video[0]) if _.size)


def dataset_rate(folder: Path, res: int, n_clips: int, workers: int, repeats: int) -> float:
    from torch.utils.data import DataLoader

    from vqvideo.data.datasets import ClipDataset
    from vqvideo.data.shards import write_shard
    from vqvideo.runtime.files import atomic_write_text

    data = folder / f"data{res}"
    if not (data / "manifest.csv").exists():
        rng = np.random.default_rng(0)
        per_shard = max(1, n_clips // 4)
        rows = ["shard,index,source,start_s,label,split"]
        for s in range(0, n_clips, per_shard):
            clips = rng.integers(0, 256, (min(per_shard, n_clips - s), 16, res, res, 3), dtype=np.uint8)
            name = f"train-{s // per_shard:05d}.h5"
            write_shard(data / "shards" / name, {"clips": clips}, {"fps": 25, "frames": 16, "resolution": res,
                                                                  "split": "train"})
            rows += [f"{name},{i},v{s + i}.mp4,0.0,,train" for i in range(len(clips))]
        atomic_write_text(data / "manifest.csv", "\n".join(rows) + "\n")

    def run():
        loader = DataLoader(ClipDataset(data, "train"), batch_size=8, shuffle=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(0))
        return sum(len(b) for b in loader)

    t, n = best(run, repeats)
    return n / t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decode.json")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("needs the ffmpeg command line (apt-get install ffmpeg)", file=sys.stderr)
        return 1
    res, results = args.resolution, {"decode": [], "dataset": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{'input':<14} {'method':<22} {'src frames':>10} {'out frames':>10} {'seconds':>8} {'src fps':>8} "
              f"{'vs ffmpeg':>9}")
        for fps in (25, 60):
            path = make_input(tmp / f"in{fps}.mp4", fps, args.seconds)
            n_src = source_frames(path)
            rows = {}
            for name, fn in (("ffmpeg CLI", ffmpeg_cli), ("vqvideo load_frames", ours), ("pyav + torch resize",
                                                                                          torch_resize)):
                # the torch path is 10x slower: once is enough to show it
                t, n_out = best(lambda: fn(path, res), 1 if fn is torch_resize else args.repeats)
                rows[name] = {"input": f"1280x720@{fps}", "method": name, "source_frames": n_src,
                              "output_frames": n_out, "seconds": round(t, 4), "source_fps": round(n_src / t, 1)}
            for row in rows.values():
                row["speed_vs_ffmpeg"] = round(rows["ffmpeg CLI"]["seconds"] / row["seconds"], 2)
                results["decode"].append(row)
                print(f"{row['input']:<14} {row['method']:<22} {row['source_frames']:>10} {row['output_frames']:>10} "
                      f"{row['seconds']:>8.3f} {row['source_fps']:>8.0f} {row['speed_vs_ffmpeg']:>8.2f}x")
        print(f"\n{'dataset':<14} {'workers':>7} {'clips/s':>9}")
        for r, n in ((64, 256), (256, 48)):
            for workers in (0, 2):
                rate = dataset_rate(tmp, r, n, workers, args.repeats)
                results["dataset"].append({"resolution": r, "clips": n, "num_workers": workers,
                                           "clips_per_s": round(rate, 1)})
                print(f"{f'{r}x{r}x16':<14} {workers:>7} {rate:>9.1f}")
    results["machine"] = {"cpus": __import__("os").cpu_count(), "python": platform.python_version(),
                          "av": av.__version__, "torch": torch.__version__,
                          "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True
                                                   ).stdout.split("\n")[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
