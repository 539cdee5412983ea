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


@pytest.fixture(scope="session")
def loaded_model():
    from deployments.engine.model_loader import ModelConfig, load_model

    return load_model(ModelConfig())


@pytest.fixture(scope="session")
def engine(loaded_model):
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID

    return KVEngine(loaded_model, EMBEDDED_MODEL_ID)


@pytest.fixture(scope="session")
def kvpress_pipeline(loaded_model):
    from transformers import pipeline

    import kvpress  # noqa: F401  (registers the pipeline)

    return pipeline("kv-press-text-generation", model=loaded_model.model, tokenizer=loaded_model.tokenizer,
                    device="cpu")
