import os

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    """The default encoder (all-MiniLM-L6-v2, fp32, CPU), loaded once."""
    import searchkit

    return searchkit.load_encoder("all-MiniLM-L6-v2", device="cpu", dtype="fp32")
