"""Shared fixtures: a tiny random model saved as a folder, and single-threaded torch for tiny models."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """The compile cache of every test in a temporary folder, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOVELVIEWS_CACHE_DIR", str(tmp_path_factory.mktemp("novelviews_cache")))
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The tiny preset (32 px, random weights) saved in our folder layout, loadable by every command."""
    from novelviews.model.configuration import model_config
    from novelviews.model.ldm import ViewConditionedLDM

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "tiny"
    ViewConditionedLDM(model_config("tiny")).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest single-threaded; on a shared 2-core machine extra threads thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.02) -> None:
    """Add seeded noise to every parameter (makes two copies of a model differ)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
