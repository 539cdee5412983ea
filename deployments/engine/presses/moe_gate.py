"""The trained gate of the ``moe_router`` press: input features -> probability over experts.

For attention layer ``l`` and KV head ``h`` the gate is a softmax over linear logits of the
head's input features (``FEATURES``, computed from the context's keys, so the gate is
query-agnostic): ``p[h] = softmax(W[l, h] @ [1, clip((x[h] - mean) / std, -3, 3)])``, ``W`` of shape
``[layers, kv_heads, experts, 1 + features]``. It is fitted offline by
``benchmarks/train_moe_router.py`` and stored as a small JSON artifact (format below); the one
for the embedded model ships in ``router_artifacts/``.

Artifact JSON: ``{"format": "kvfleet-moe-router/1", "model": str, "num_layers": L,
"num_kv_heads": H, "experts": [names], "features": [names], "feature_mean": [F],
"feature_std": [F], "gate": [L][H][E][1 + F], "training": {...}}`` - plain numbers, so the
same file gives the same kept tokens on every replica.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch.nn import functional as F

from kvpool.errors import PressSpecError

FORMAT = "kvfleet-moe-router/1"
FEATURES = ("compression_ratio", "log_context", "key_norm_cv", "key_anisotropy")
BUNDLED_DIR = Path(__file__).resolve().parent / "router_artifacts"
EMBEDDED_ARTIFACT = "smollm2-135m-instruct.json"


def input_features(keys: torch.Tensor, compression_ratio: float) -> torch.Tensor:
    """``[kv_heads, len(FEATURES)]`` float32 features of one layer's context keys ``[1, H, T, d]``:
    the ratio asked for, log2(T) / 12, the coefficient of variation of the key norms, and the
    mean cosine of the keys to their mean direction (how alike the keys are)."""
    k = keys[0].float()
    norms = k.norm(dim=-1)
    cv = norms.std(dim=-1, unbiased=False) / norms.mean(dim=-1).clamp_min(1e-6)
    unit = F.normalize(k, dim=-1)
    anisotropy = F.cosine_similarity(unit, unit.mean(dim=1, keepdim=True), dim=-1).mean(dim=-1)
    heads = k.shape[0]
    ratio = torch.full((heads,), float(compression_ratio))
    length = torch.full((heads,), math.log2(max(k.shape[1], 2)) / 12)
    return torch.stack([ratio, length, cv, anisotropy], dim=-1)


def standardized(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` clipped to [-3, 3]: a context far outside the calibration range (e.g. much
    longer) cannot push the gate beyond what it was fitted on."""
    return ((x - mean) / std).clamp(-3.0, 3.0)


@dataclass(frozen=True)
class RouterGate:
    """A loaded artifact. ``probabilities(layer, x)``: ``x`` ``[H, F]`` -> ``[H, E]`` (rows sum to 1)."""

    model: str
    num_layers: int
    num_kv_heads: int
    experts: tuple[str, ...]
    feature_mean: torch.Tensor  # [F]
    feature_std: torch.Tensor  # [F]
    weights: torch.Tensor  # [L, H, E, 1 + F]
    training: dict

    def probabilities(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        z = standardized(x, self.feature_mean, self.feature_std)
        z = torch.cat([torch.ones(z.shape[0], 1), z], dim=-1)
        logits = torch.einsum("hef,hf->he", self.weights[layer], z)
        return torch.softmax(logits, dim=-1)

    def to_json(self) -> dict:
        return {"format": FORMAT, "model": self.model, "num_layers": self.num_layers,
                "num_kv_heads": self.num_kv_heads, "experts": list(self.experts), "features": list(FEATURES),
                "feature_mean": _rounded(self.feature_mean), "feature_std": _rounded(self.feature_std),
                "gate": _rounded(self.weights), "training": self.training}

    @classmethod
    def from_json(cls, data: dict) -> "RouterGate":
        """Raises ValueError naming what does not match the format."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} artifact (format {data.get('format')!r})")
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"artifact features {data['features']} are not this version's {list(FEATURES)}")
        weights = torch.tensor(data["gate"], dtype=torch.float32)
        shape = (data["num_layers"], data["num_kv_heads"], len(data["experts"]), 1 + len(FEATURES))
        if tuple(weights.shape) != shape:
            raise ValueError(f"gate has shape {tuple(weights.shape)}, expected {shape}")
        std = torch.tensor(data["feature_std"], dtype=torch.float32)
        if bool((std <= 0).any()):
            raise ValueError("feature_std must be positive")
        return cls(str(data["model"]), int(data["num_layers"]), int(data["num_kv_heads"]), tuple(data["experts"]),
                   torch.tensor(data["feature_mean"], dtype=torch.float32), std, weights, dict(data.get("training", {})))


def _rounded(t: torch.Tensor):
    """Nested lists of floats rounded to 6 decimals (a stable, diff-able file)."""
    return torch.round(t.double() * 1e6).div(1e6).tolist()


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> RouterGate:
    return RouterGate.from_json(json.loads(Path(path).read_text()))


def load_gate(path: Path) -> RouterGate:
    """The gate stored at ``path`` (cached per file version); PressSpecError (422) if it cannot be read."""
    try:
        return _load(str(path), path.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PressSpecError(f"press 'moe_router': router artifact {path.name!r} cannot be loaded: {exc}") from exc
