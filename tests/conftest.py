import os
import tempfile

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# dtype_speed's measurements go to a folder of this run's, not the user's ~/.cache.
os.environ.setdefault("SEARCHKIT_CACHE_DIR", tempfile.mkdtemp(prefix="searchkit-cache-"))


@pytest.fixture(scope="session")
def minilm():
    """The default encoder (all-MiniLM-L6-v2, fp32, CPU), loaded once."""
    import searchkit

    return searchkit.load_encoder("all-MiniLM-L6-v2", device="cpu", dtype="fp32")


@pytest.fixture(scope="session")
def small_bert(tmp_path_factory):
    """A small, fast BERT folder cut out of all-MiniLM-L6-v2 (same tokenizer, so the same
    chunks; other weights and dim, so "another model"): see tiny_models.make_small_bert."""
    from tiny_models import make_small_bert

    return make_small_bert(tmp_path_factory.mktemp("small-bert"))
