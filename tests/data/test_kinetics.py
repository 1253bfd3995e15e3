"""download-kinetics600 against a local HTTP server (127.0.0.1) with Range support, serving tarballs made here."""

import csv
import gzip
import io
import random
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vqvideo.data import kinetics
from vqvideo.data.kinetics import DownloadError, download_kinetics600


class Handler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-``; the first GET of a path in ``cut`` stops after ``cut[path]`` bytes."""

    cut: dict = {}
    log: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        Handler.log.append((self.path, rng))
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.path in Handler.cut:  # an interrupted transfer: promise everything, send a part, hang up
            body = body[: Handler.cut.pop(self.path)]
            self.close_connection = True
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    Handler.cut, Handler.log = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _video_bytes(i: int) -> bytes:
    return random.Random(i).randbytes(300_000)  # incompressible, so the tarball is big enough to be cut mid-way


def _site(root, base):
    """Two splits: train (two archives, one to be cut mid-way) and val (one archive, corrupt)."""
    a = _tarball({"abc_def_000010_000020.mp4": _video_bytes(1), "xyz-12_000000_000010.mp4": _video_bytes(2)})
    b = _tarball({"part/qqq_000005_000015.mp4": _video_bytes(3)})  # a folder inside the tarball is flattened
    good_val = _tarball({"vvv_000001_000011.mp4": _video_bytes(4)})
    bad_val = bytearray(good_val)
    bad_val[len(bad_val) // 2: len(bad_val) // 2 + 64] = b"\x00" * 64  # corrupt: CRC / inflate error
    (root / "train").mkdir()
    (root / "val").mkdir()
    (root / "train" / "a.tar.gz").write_bytes(a)
    (root / "train" / "b.tar.gz").write_bytes(b)
    (root / "val" / "v.tar.gz").write_bytes(bytes(bad_val))
    (root / "k600_train_path.txt").write_text(f"{base}/train/a.tar.gz\n{base}/train/b.tar.gz\n")
    (root / "k600_val_path.txt").write_text(f"{base}/val/v.tar.gz\n")
    (root / "train.txt").write_text("label,youtube_id,time_start,time_end,split\n"
                                    "juggling balls,abc_def,10,20,train\n"
                                    "dancing,xyz-12,0,10,train\n"
                                    "dancing,qqq,5,15,train\n")
    (root / "val.txt").write_text("label,youtube_id,time_start,time_end,split\nsinging,vvv,1,11,validate\n")
    return a, good_val


def _run(tmp_path, base, splits):
    return download_kinetics600(
        tmp_path / "videos", tmp_path / "targz", splits,
        {s: f"{base}/k600_{s}_path.txt" for s in splits}, {s: f"{base}/{s}.txt" for s in splits},
        parallel=2, retries=2, timeout=10)


def test_download_resumes_checks_and_extracts(tmp_path, server):
    root, base = server
    a, good_val = _site(root, base)
    Handler.cut["/train/a.tar.gz"] = len(a) // 3

    with pytest.raises(DownloadError) as e:
        _run(tmp_path, base, ["train", "val"])
    # the corrupt archive is reported (and only it) ...
    assert "v.tar.gz" in str(e.value) and "corrupt" in str(e.value) and "a.tar.gz" not in str(e.value)
    videos = tmp_path / "videos"
    # ... and nothing of it was extracted; it is deleted so that a rerun fetches it again
    assert not (videos / "val").exists()
    assert not (tmp_path / "targz" / "val" / "v.tar.gz").exists()
    assert not (tmp_path / "targz" / "complete.json").exists()

    # the interrupted download resumed where it stopped (a Range request from the cut) and is intact
    gets = [rng for path, rng in Handler.log if path == "/train/a.tar.gz"]
    assert gets == [None, f"bytes={len(a) // 3}-"]
    assert (videos / "train" / "juggling balls" / "abc_def_000010_000020.mp4").read_bytes() == _video_bytes(1)
    assert (videos / "train" / "dancing" / "xyz-12_000000_000010.mp4").read_bytes() == _video_bytes(2)
    assert (videos / "train" / "dancing" / "qqq_000005_000015.mp4").read_bytes() == _video_bytes(3)
    assert not (tmp_path / "targz" / "train" / "a.tar.gz").exists()  # archives are not kept by default
    rows = list(csv.DictReader(open(videos / "annotations" / "train.csv")))
    assert [r["youtube_id"] for r in rows] == ["abc_def", "xyz-12", "qqq"]

    # the server now has a good copy: a rerun fetches only the failed archive and completes
    (root / "val" / "v.tar.gz").write_bytes(good_val)
    Handler.log.clear()
    report = _run(tmp_path, base, ["train", "val"])
    assert [p for p, _ in Handler.log if p.endswith(".tar.gz")] == ["/val/v.tar.gz"]
    assert len(report.skipped) == 2 and len(report.extracted) == 1
    assert (videos / "val" / "singing" / "vvv_000001_000011.mp4").read_bytes() == _video_bytes(4)
    assert (tmp_path / "targz" / "complete.json").exists()


def test_unsafe_members_are_refused(tmp_path):
    for name in ("../evil.mp4", "/abs/evil.mp4", "a/../../evil.mp4"):
        path = tmp_path / "x.tar.gz"
        path.write_bytes(_tarball({name: b"x"}))
        with pytest.raises(DownloadError, match="unsafe"):
            kinetics.check_archive(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("v.mp4")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    path.write_bytes(buf.getvalue())
    with pytest.raises(DownloadError, match="link"):
        kinetics.check_archive(path)
    path.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(DownloadError, match="corrupt"):
        kinetics.check_archive(path)


def test_annotation_path_lists_are_converted():
    text = "dancing/ab_c_000001_000011.mp4\nsinging/zz_000002_000012.mp4\n"
    rows = list(csv.DictReader(io.StringIO(kinetics.annotations_to_csv(text, "train"))))
    assert rows[0] == {"label": "dancing", "youtube_id": "ab_c", "time_start": "1", "time_end": "11", "split": "train"}
    assert rows[1]["youtube_id"] == "zz"
