"""The copy-last-frame baseline: every predicted frame is the last conditioning frame."""

import numpy as np

from vqvideo.sampling.baseline import copy_last


def test_copy_last_holds_the_last_conditioning_frame():
    clips = np.random.default_rng(0).integers(0, 256, size=(2, 16, 4, 4, 3), dtype=np.uint8)
    videos = copy_last(clips, 4)
    assert videos.dtype == np.uint8 and videos.shape == clips.shape
    assert np.array_equal(videos[:, :4], clips[:, :4])
    assert all(np.array_equal(videos[:, t], clips[:, 3]) for t in range(4, 16))
