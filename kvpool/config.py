"""KVPoolConfig: the one closed settings model of a KVPool (composed into the app's AppConfig)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from kvpool.codecs.registry import codec_names
from kvpool.eviction.registry import policy_names
from kvpool.sizes import parse_bytes


class RecompressConfig(BaseModel):
    """Re-prune instead of dropping: when the last tier must evict, victims are first pruned
    tighter, ``step_ratio`` at a time, until they reach ``max_compression_ratio``; only then are
    they evicted. Needs a ``recompressor`` passed to the KVPool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    step_ratio: float = Field(default=0.25, gt=0.0, lt=1.0,
                              description="added to an entry's compression ratio at each re-prune")
    max_compression_ratio: float = Field(default=0.9, gt=0.0, lt=1.0,
                                         description="floor: never drop more than this fraction of the original tokens")
    press: str = Field(default="keydiff", description="cache-only scorer that re-prunes (kvpool.recompress."
                       "RECOMPRESS_SCORERS); default: the one the committed quality benchmark ranks best "
                       "(benchmarks/results/ruler_quality.json)")

    @field_validator("press")
    @classmethod
    def _known_scorer(cls, name: str) -> str:
        from kvpool.recompress import RECOMPRESS_SCORERS

        if name not in RECOMPRESS_SCORERS:
            raise ValueError(f"unknown re-compression press {name!r}; valid (score from stored keys alone): "
                             f"{', '.join(RECOMPRESS_SCORERS)}")
        return name


class DurableConfig(BaseModel):
    """Durable caches (kvpool.durable_store, docs/durability.md): every stored session cache is also
    written, behind the request, to ``dir`` on the replica's node, so that a restart or a dead actor
    reads it back instead of re-prefilling. ``dir`` is relative to the process's working directory
    unless absolute; each application and replica gets its own sub-directory. ``budget_bytes`` caps
    the bytes of cache files kept there (a session that does not fit is not persisted: it is
    recomputed after a restart, logged and counted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    dir: Path = Path("kvfleet-caches")
    budget_bytes: int = Field(default=4 << 30, ge=0, description="bytes of cache files kept on disk")

    @field_validator("budget_bytes", mode="before")
    @classmethod
    def _parse_size(cls, value: object) -> object:
        return parse_bytes(value) if isinstance(value, str) else value


class KVPoolConfig(BaseModel):
    """Budgets are bytes of tensor data actually held (``CompressedKV.nbytes``); sizes may be written
    as ``"512MiB"``. Tiers, fastest first: ``device`` (only when ``device`` names a CUDA device),
    host memory (always), ``disk`` (only when ``disk_dir`` is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host_budget_bytes: int = Field(default=1 << 30, ge=0)
    device: str | None = Field(default=None, description="CUDA device of the accelerator tier, e.g. 'cuda:0'")
    device_budget_bytes: int = Field(default=0, ge=0)
    disk_dir: Path | None = None
    disk_budget_bytes: int = Field(default=0, ge=0)
    eviction_policy: str = "lru"
    default_codec: str = "none"
    recompress: RecompressConfig = RecompressConfig()
    recent_events: int = Field(default=1024, ge=1, description="events kept for polling")
    remembered_removals: int = Field(default=10_000, ge=0,
                                     description="freed/evicted handles remembered for clear errors")
    stats_series_len: int = Field(default=256, ge=1, description="samples kept per access-statistics time series")

    @field_validator("host_budget_bytes", "device_budget_bytes", "disk_budget_bytes", mode="before")
    @classmethod
    def _parse_size(cls, value: object) -> object:
        return parse_bytes(value) if isinstance(value, str) else value

    @field_validator("eviction_policy", "default_codec")
    @classmethod
    def _normalise_name(cls, name: str) -> str:
        return name.strip().lower()

    @field_validator("eviction_policy", "default_codec")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        kind, names = {"eviction_policy": ("eviction policy", policy_names()),
                       "default_codec": ("codec", codec_names())}[info.field_name]
        if name not in names:
            raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(names)}")
        return name

    @field_validator("device")
    @classmethod
    def _cuda_only(cls, device: str | None) -> str | None:
        if device is not None and not device.startswith("cuda"):
            raise ValueError(f"device must name a CUDA device ('cuda' or 'cuda:N'), got {device!r}; "
                             "leave it unset for host memory only")
        return device

    @model_validator(mode="after")
    def _tiers_have_budgets(self) -> "KVPoolConfig":
        if (self.device is None) != (self.device_budget_bytes == 0):
            raise ValueError("set device and device_budget_bytes together (or neither)")
        if (self.disk_dir is None) != (self.disk_budget_bytes == 0):
            raise ValueError("set disk_dir and disk_budget_bytes together (or neither)")
        return self
