"""Shared fixtures: the real embedded model, loaded once per test process."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FACTS = (
    "The secret code of the vault is 7341. Alice was born in Lisbon. "
    "The meeting is on Thursday at noon. "
)
FILLER = "The committee discussed the annual budget, the new library wing and several unrelated matters. "


def document(repeats: int = 40) -> str:
    """A filler document with planted facts in the middle (about 17 tokens per repeat)."""
    filler = FILLER * repeats
    half = len(filler) // 2
    return filler[:half] + FACTS + filler[half:]


DTYPES = ("float32", "bfloat16")  # the dtypes the engine tests run in (model.dtype; auto picks one)


@pytest.fixture(scope="session")
def loaded_models():
    """``loaded_models(dtype)``: the embedded model in that dtype, loaded once per test process."""
    from deployments.engine.model_loader import ModelConfig, load_model

    cache: dict = {}

    def get(dtype: str):
        if dtype not in cache:
            cache[dtype] = load_model(ModelConfig(dtype=dtype))
        return cache[dtype]

    return get


@pytest.fixture(scope="session")
def engines(loaded_models):
    """``engines(dtype)``: a KVEngine over ``loaded_models(dtype)``, one per dtype."""
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID

    cache: dict = {}

    def get(dtype: str):
        if dtype not in cache:
            cache[dtype] = KVEngine(loaded_models(dtype), EMBEDDED_MODEL_ID)
        return cache[dtype]

    return get


@pytest.fixture(scope="session")
def kvpress_pipelines(loaded_models):
    """``kvpress_pipelines(dtype)``: kvpress's ``kv-press-text-generation`` pipeline on that model."""
    from transformers import pipeline

    import kvpress  # noqa: F401  (registers the pipeline)

    cache: dict = {}

    def get(dtype: str):
        if dtype not in cache:
            loaded = loaded_models(dtype)
            cache[dtype] = pipeline("kv-press-text-generation", model=loaded.model, tokenizer=loaded.tokenizer,
                                    device="cpu")
        return cache[dtype]

    return get


@pytest.fixture(scope="session")
def loaded_model(loaded_models):
    """The embedded model in float32 (explicit, so tests do not depend on the machine's ``auto``)."""
    return loaded_models("float32")


@pytest.fixture(scope="session")
def engine(engines):
    return engines("float32")


@pytest.fixture(scope="session")
def kvpress_pipeline(kvpress_pipelines):
    return kvpress_pipelines("float32")
