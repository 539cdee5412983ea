"""Shared start-up of a process that runs the model (prefill and decode actors)."""

from __future__ import annotations

import logging
import os

import torch

from deployments.engine.engine import KVEngine
from deployments.engine.model_loader import ModelConfig, load_model

log = logging.getLogger(__name__)
_VISIBLE_LOGGERS = ("deployments", "kvpool")


def show_info_logs() -> None:
    """Ray worker processes have no logging handler (Python's last resort prints WARNING and up
    only): give kvfleet's loggers one at INFO, so that a model process's start-up facts (the
    model's dtype and why, its load time) and pool conversions appear in ``serve run``'s output.
    Does nothing where the process already configured logging."""
    if logging.getLogger().handlers:
        return
    for name in _VISIBLE_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)


def start_engine(model: ModelConfig, torch_threads: int) -> KVEngine:
    """Load the configured model in this process (offline, quiet) and wrap it in a KVEngine."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(torch_threads)
    show_info_logs()
    loaded = load_model(model)
    log.info("model %s loaded from %s in %.1f s", model.name, loaded.path, loaded.load_s)
    return KVEngine(loaded, model.name)
