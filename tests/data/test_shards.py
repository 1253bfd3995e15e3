import numpy as np

from vqvideo.data.shards import list_shards, read_shard, write_shard


def test_roundtrip_and_chunking(tmp_path):
    clips = np.random.default_rng(0).integers(0, 255, (3, 4, 8, 8, 3), dtype=np.uint8)
    p = write_shard(tmp_path / "a.h5", {"clips": clips, "clip": np.arange(3)}, {"fps": 25.0})
    arrays, attrs = read_shard(p)
    assert np.array_equal(arrays["clips"], clips) and attrs["fps"] == 25.0
    import h5py

    with h5py.File(p) as f:
        assert f["clips"].chunks == (1, 4, 8, 8, 3)
    assert list_shards(tmp_path) == [p]


def test_temporary_files_are_invisible(tmp_path):
    (tmp_path / ".b.h5.123.tmp").write_bytes(b"partial")
    write_shard(tmp_path / "a.h5", {"x": np.zeros((1, 2))})
    assert [p.name for p in list_shards(tmp_path)] == ["a.h5"]
