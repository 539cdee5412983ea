"""What to generate: ``SamplingParams`` (one request, one choice) and ``GuidedSpec`` (the grammar).

Field semantics follow the source each field comes from:

- ``temperature``, ``top_p``, ``seed``, ``stop``, ``logprobs``, ``top_logprobs``,
  ``presence_penalty``, ``frequency_penalty``, ``logit_bias``: OpenAI chat completions.
- ``repetition_penalty``, ``min_tokens``, ``ignore_eos``, ``stop_token_ids``, ``top_k``, ``min_p``: vLLM
  ``SamplingParams`` (the same
  semantics as Hugging Face's ``RepetitionPenaltyLogitsProcessor`` / ``MinNewTokensLogitsProcessor``).
- ``guided``: vLLM structured outputs (``json`` / ``regex`` / ``choice`` / ``grammar`` /
  ``json_object``), compiled by llguidance (see ``grammar.py``).

``SamplingParams`` travels between Ray actors as JSON (``model_dump(mode="json")``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kvpool.errors import KVFleetError

LOGIT_BIAS_LIMIT = 100.0  # OpenAI: each bias is in [-100, 100]
LOGIT_BIAS_MAX_ENTRIES = 300  # OpenAI's limit on the number of biased tokens


class SamplingError(KVFleetError, ValueError):
    """A sampling parameter the engine cannot honour (HTTP 400), e.g. a token id outside the vocab."""


GuidedKind = Literal["json_schema", "json_object", "regex", "choice", "grammar"]


class GuidedSpec(BaseModel):
    """A structured-output constraint. ``spec``: the JSON schema (JSON text) for ``json_schema``,
    ignored for ``json_object``, the regex for ``regex``, a JSON list of strings for ``choice``,
    a Lark or GBNF grammar for ``grammar``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: GuidedKind
    spec: str = ""


class SamplingParams(BaseModel):
    """What to generate. ``temperature == 0`` is greedy (argmax, as kvpress's pipeline does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0, description="keep the k most likely tokens (0: all; vLLM's -1)")
    min_p: float = Field(default=0.0, ge=0.0, le=1.0, description="drop tokens below min_p x the top probability")
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    ignore_eos: bool = False
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0)
    logit_bias: dict[int, float] = Field(default_factory=dict)
    min_tokens: int = Field(default=0, ge=0)
    stop_token_ids: tuple[int, ...] = Field(
        default=(), description="vLLM: token ids that end the answer when sampled (finish_reason stop, the token's "
        "text kept as for any token), whatever ignore_eos says; suppressed before min_tokens like EOS")
    guided: GuidedSpec | None = None

    @field_validator("logit_bias")
    @classmethod
    def _bias_in_range(cls, value: dict[int, float]) -> dict[int, float]:
        if len(value) > LOGIT_BIAS_MAX_ENTRIES:
            raise ValueError(f"logit_bias has {len(value)} entries; at most {LOGIT_BIAS_MAX_ENTRIES}")
        for token, bias in value.items():
            if token < 0:
                raise ValueError(f"logit_bias token id {token} is negative")
            if not -LOGIT_BIAS_LIMIT <= bias <= LOGIT_BIAS_LIMIT:
                raise ValueError(f"logit_bias[{token}] = {bias} is outside [-100, 100]")
        return value

    @field_validator("stop_token_ids")
    @classmethod
    def _token_ids(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(token < 0 for token in value):
            raise ValueError(f"stop_token_ids {list(value)[:5]} holds a negative token id")
        return value

    def ending_ids(self, eos_ids: set[int]) -> set[int]:
        """Token ids whose sampling ends the answer: ``stop_token_ids``, and the model's EOS ids
        unless ``ignore_eos``."""
        return set(self.stop_token_ids) | (set() if self.ignore_eos else set(eos_ids))

    @property
    def processes_logits(self) -> bool:
        """True when any per-request logits processor is needed (penalties, bias, min_tokens, grammar)."""
        return bool(self.presence_penalty or self.frequency_penalty or self.repetition_penalty != 1.0
                    or self.logit_bias or self.min_tokens or self.guided is not None)
