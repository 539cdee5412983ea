"""Shared start-up of a process that runs the model (prefill and decode actors)."""

from __future__ import annotations

import logging
import os

import torch

from deployments.engine.engine import KVEngine
from deployments.engine.model_loader import ModelConfig, load_model

log = logging.getLogger(__name__)


def start_engine(model: ModelConfig, torch_threads: int) -> KVEngine:
    """Load the configured model in this process (offline, quiet) and wrap it in a KVEngine."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(torch_threads)
    loaded = load_model(model)
    log.info("model %s loaded from %s in %.1f s", model.name, loaded.path, loaded.load_s)
    return KVEngine(loaded, model.name)
