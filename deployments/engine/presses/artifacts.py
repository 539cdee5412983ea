"""kvpress presses that need a trained artifact, loaded from a LOCAL path only.

kvpress 0.5.5 fetches these artifacts from the Hugging Face Hub (or GitHub) inside
``post_init_from_model``: KVzap's scorer models, Q-Filters' filters, DuoAttention's head
patterns, Fast KVzip's gates, ExpectedAttentionStats' query statistics, LU-KV's budget curves.
kvfleet never downloads at run time, so each adapter below takes the artifact as a local path
argument and loads it from disk; the catalog (catalog.py) marks the argument as required, and
a spec without it is a PressSpecError (HTTP 422) that says what file is needed.

Each adapter subclasses the kvpress press and only replaces the loading step; scoring and
compression are kvpress's own code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from kvpress import DuoAttentionPress, ExpectedAttentionStatsPress, FastKVzipPress, KVzapPress, LUKVPress, QFilterPress
from kvpress.presses.expected_attention_with_stats import ExpectedAttentionStats
from kvpress.presses.fastkvzip_press import FastKVzipGate
from kvpress.presses.kvzap_press import KVzapModel
from kvpress.presses.qfilter_press import QFilters

from kvpool.errors import PressSpecError


def _existing(path: str | None, what: str) -> Path:
    """``path`` as a Path; PressSpecError (HTTP 422) when it is missing or does not exist."""
    if not path:
        raise PressSpecError(f"{what} path is required (nothing is downloaded at run time)")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise PressSpecError(f"{what} not found at {str(resolved)!r} (a path on the replica's machine)")
    return resolved


@dataclass
class LocalKVzapPress(KVzapPress):
    """KVzap with its surrogate scorer from ``model_path``: a directory written by
    ``KVzapModel.save_pretrained`` (config.json + weights), e.g. a local copy of
    ``nvidia/KVzap-mlp-<model>``."""

    model_path: str | None = None

    def post_init_from_model(self, model):
        if self.kvzap_model_name != self.model_path:
            self.kvzap_model = KVzapModel.from_pretrained(str(_existing(self.model_path, "KVzap model")))
            self.kvzap_model_name = self.model_path


@dataclass
class LocalQFilterPress(QFilterPress):
    """Q-Filters from ``filters_path``: a directory written by ``QFilters.save_pretrained``
    (a local copy of ``nthngdy/<model>_qfilt``); filters are ``[layers, kv_heads, head_dim]``."""

    filters_path: str | None = None

    def post_init_from_model(self, model):
        filters = QFilters.from_pretrained(str(_existing(self.filters_path, "Q-Filters directory"))).q_filters
        self.q_filters = filters.to(model.dtype)


@dataclass
class LocalDuoAttentionPress(DuoAttentionPress):
    """DuoAttention with head patterns from ``pattern_path``: a directory holding the DuoAttention
    repo's ``config.json`` (``sink_size``, ``recent_size``) and ``full_attention_heads.tsv``
    (``[layers, kv_heads]`` scores in [0, 1])."""

    pattern_path: str | None = None

    def post_init_from_model(self, model):
        folder = _existing(self.pattern_path, "DuoAttention pattern directory")
        config = json.loads((folder / "config.json").read_text())
        scores = np.clip(np.loadtxt(folder / "full_attention_heads.tsv", dtype=float, delimiter="\t"), 0, 1)
        scores = scores.reshape(model.config.num_hidden_layers, -1)
        self.sink_size, self.recent_size = int(config["sink_size"]), int(config["recent_size"])
        n_pruned = round(scores.size * self.head_compression_ratio)
        self.streaming_mask = torch.zeros(scores.shape, dtype=torch.bool, device=model.device)
        if n_pruned > 0:
            indices = np.argsort(scores, axis=None)[:n_pruned]
            self.streaming_mask[np.unravel_index(indices, scores.shape)] = True


@dataclass
class LocalFastKVzipPress(FastKVzipPress):
    """Fast KVzip with gates from ``gates_path``: the released ``.pt`` file (``{"module": [one
    state dict per layer]}``, file name ``q<groups>_dim16_sink<n>.pt``). The gates run in the
    model's dtype (the file's weights are cast on load), as they read its hidden states."""

    gates_path: str | None = None

    def post_init_from_model(self, model):
        if self.gates is not None:
            return
        path = _existing(self.gates_path, "Fast KVzip gates file")
        state_dicts = torch.load(path, weights_only=True)["module"]
        first = state_dicts[0]
        head_group_out, input_dim = first["q_proj.weight"].shape
        head_out = first["k_proj.weight"].shape[0]
        out_dim = first["q_norm.weight"].shape[-1]
        match = re.search(r"sink(\d+)", path.name)
        sink = int(match.group(1)) if match else 0
        gates = []
        for index, weights in enumerate(state_dicts):
            gate = FastKVzipGate(index, input_dim, head_out // out_dim, head_group_out // head_out,
                                 model.dtype, out_dim, sink).to(model.device)
            gate.load_state_dict(weights)
            gates.append(gate)
        self.gates = gates


@dataclass
class LocalExpectedAttentionStatsPress(ExpectedAttentionStatsPress):
    """ExpectedAttention with precomputed query statistics from ``stats_folder`` (a directory
    written by ``ExpectedAttentionStats.save_pretrained``); never the Hub, never a dataset."""

    def post_init_from_model(self, model):
        if self.mu is None and self.cov is None:
            stats = ExpectedAttentionStats.from_pretrained(str(_existing(self.stats_folder, "query statistics")))
            self.mu = stats.query_mean.data.to(model.device, dtype=model.dtype)
            self.cov = stats.query_cov.data.to(model.device, dtype=model.dtype)


@dataclass
class LocalLUKVPress(LUKVPress):
    """LU-KV with its budget curve from ``budget_curve_path``: a ``.npy`` array of shape
    ``[99, layers, kv_heads]`` (the file kvpress would fetch for (model, inner press))."""

    budget_curve_path: str | None = None

    def _load_budget_curves(self, model) -> np.ndarray:
        curves = np.load(_existing(self.budget_curve_path, "LU-KV budget curve"), allow_pickle=False)
        expected = (99, *self._model_curve_shape(model))
        if curves.shape != expected:
            raise ValueError(f"LU-KV budget curve must have shape {expected}, got {curves.shape}")
        return curves
