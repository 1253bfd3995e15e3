"""Write-to-temp-then-rename: a reader sees the old file or the whole new one, and no temporary file stays."""

import hashlib

import pytest

from vqvideo.runtime.files import atomic_path, atomic_write_text, sha256_file


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "old\n")  # the folder is made
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            assert not target.read_text().startswith("half")  # not visible before the block ends
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new\r\n")
    assert target.read_bytes() == b"new\r\n" and sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_text_is_written_as_given_and_hashed_by_its_bytes(tmp_path):
    path = atomic_write_text(tmp_path / "m.csv", "a,b\r\nä\n")  # no newline translation, UTF-8
    assert path.read_bytes() == "a,b\r\nä\n".encode()
    assert sha256_file(path) == hashlib.sha256("a,b\r\nä\n".encode()).hexdigest()
