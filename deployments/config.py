"""AppConfig: every setting of a kvfleet application, one closed pydantic model.

``serve run configs/cluster.yaml`` passes the YAML's ``args`` to ``build_app``, which validates
them here: a typo is an error naming the field (``extra="forbid"`` everywhere).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from control_plane.config import ControlPlaneConfig
from control_plane.routing.config import PlainRoutingConfig
from deployments.common.schema_base import ClosedModel
from deployments.engine.model_loader import ModelConfig
from deployments.ingress.auth.config import SecurityConfig
from deployments.engine.decode.config import BatchConfig
from deployments.engine.presses.policy import PressPolicyConfig
from kvpool.config import DurableConfig, KVPoolConfig
from kvpool.press_spec import PressSpec


class ReplicaConfig(ClosedModel):
    """One serving replica (a Serve deployment owning a PrefillActor and a DecodeActor)."""

    count: int = Field(default=2, ge=1, description="number of replicas (each its own Serve deployment)")
    num_cpus: float = Field(default=0.0, ge=0, description="logical CPUs reserved per replica actor")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per replica actor (fractional allowed)")
    torch_threads: int = Field(default=1, ge=1, description="intra-op threads per model process")
    max_ongoing_requests: int = Field(default=32, ge=1)
    max_queued_requests: int = Field(default=64, ge=0, description="beyond this, requests get 429")
    pool: KVPoolConfig = KVPoolConfig()
    durable: DurableConfig = Field(default_factory=DurableConfig,
                                   description="session caches kept on the node's disk across restarts")
    node_resources: list[dict[str, float]] = Field(
        default_factory=list, description="custom Ray resources per replica index, to pin replicas to nodes")


class PlainRequestConfig(ClosedModel):
    """Requests without a session: reuse stored compressed prefixes, compress long prompts."""

    prefix_cache: bool = True
    compression_threshold_tokens: int = Field(default=1024, ge=1,
                                              description="prompts at least this long are compressed")
    press: PressSpec = Field(
        default=PressSpec(name="kvzip", compression_ratio=0.25),
        description="press of long plain prompts: the quality benchmark's choice, as for sessions "
                    "(benchmarks/results/ruler_quality.json; min_tokens is compression_threshold_tokens)")
    block_tokens: int = Field(default=16, ge=1, description="block size of the compressed-prefix index")
    max_prefix_entries: int = Field(default=64, ge=0, description="stored plain-request prefixes per replica")
    routing: PlainRoutingConfig = PlainRoutingConfig()
    share_prefixes_across_owners: bool = Field(default=False, description="false: a prefix is reused only by "
                                               "its owner (API key identity); see deployments/common/prefix_scope.py")


class TransferConfig(ClosedModel):
    """How migrations move caches between replicas' decode actors (see transfer/README.md).

    ``faults`` is chaos testing: the i-th migration ticket gets the i-th fault (``corrupt``,
    ``drop``, ``delay``, ``die``), later ones none - e.g. to watch a corrupted transfer end in a
    rebuild. Leave empty in production."""

    backend: str = Field(default="auto", description="auto | nixl | collective | object_store | local | fake")
    timeout_s: float = Field(default=60.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict, description="the backend's own Config fields")
    faults: list[Literal["corrupt", "drop", "delay", "die"]] = Field(default_factory=list)

    @field_validator("backend")
    @classmethod
    def _known(cls, name: str) -> str:
        from transfer.registry import backend_names

        if name not in backend_names():
            raise ValueError(f"unknown transfer backend {name!r}; valid: {', '.join(backend_names())}")
        return name


class LimitsConfig(ClosedModel):
    """Bounds on the work one request may cause (deployments/ingress/guards/limits.py enforces the request ones,
    deployments/ingress/guards/body_limit.py the body size; README "Limits")."""

    max_context_tokens: int = Field(default=8000, ge=1)
    max_tokens_default: int = Field(default=256, ge=1)
    max_tokens_limit: int = Field(default=2048, ge=1)
    max_n: int = Field(default=4, ge=1)
    request_timeout_s: float = Field(default=120.0, gt=0)
    load_timeout_s: float = Field(default=600.0, gt=0)
    max_body_bytes: int = Field(default=8 << 20, ge=1024, description="HTTP request bodies above this: 413")
    max_messages: int = Field(default=512, ge=1, description="messages per chat request or session")
    max_content_parts: int = Field(default=64, ge=1, description="content parts per message")
    max_documents: int = Field(default=256, ge=1, description="documents per session")
    max_stop_sequences: int = Field(default=4, ge=0, description="entries of `stop`")
    max_stop_chars: int = Field(default=256, ge=1, description="characters per stop sequence")
    max_top_logprobs: int = Field(default=20, ge=0, description="`top_logprobs` per token")
    max_press_nodes: int = Field(default=8, ge=1, description="presses in one press spec, wrappers included")
    max_lookup_token_ids: int = Field(default=32768, ge=1, description="token_ids in POST /admin/lookup")
    max_tools: int = Field(default=128, ge=0, description="entries of `tools` per request (OpenAI's limit)")
    max_tool_schema_bytes: int = Field(default=65536, ge=64,
                                       description="one tool's definition as compact JSON (name, description, "
                                                   "parameters), before its schema is compiled")
    max_prompts: int = Field(default=32, ge=1, description="choices (prompts x n) in one POST /v1/completions")


class ResponsesConfig(ClosedModel):
    """The Responses API's conversation state (deployments/ingress/responses/, docs/responses.md)."""

    compress_after_tokens: int = Field(
        default=1024, ge=1,
        description="a chain whose uncompressed history (everything before the newest turn that the press has not "
                    "read yet) reaches this many tokens is re-prefilled under its press when the next response is "
                    "stored; the newest turn stays whole")
    ttl_s: float | None = Field(default=None, gt=0,
                                description="idle TTL of a stored response; None: control.default_ttl_s")
    ready_wait_s: float = Field(default=60.0, gt=0,
                                description="how long a continuation waits for a previous response being rebuilt "
                                            "or moved before answering 409")


class AppConfig(ClosedModel):
    """The whole application: model, default press, replicas, control plane, limits, security."""

    name: str = "kvfleet"
    model: ModelConfig = ModelConfig()
    default_press: PressSpec = Field(
        default=PressSpec(name="kvzip", compression_ratio=0.25, min_tokens=283),
        description="press of sessions that give none: the quality benchmark's choice, made on half its seeds "
                    "(benchmarks/results/ruler_quality.json, docs/presses.md); contexts under min_tokens are "
                    "stored uncompressed")
    replicas: ReplicaConfig = ReplicaConfig()
    control: ControlPlaneConfig = ControlPlaneConfig()
    plain: PlainRequestConfig = PlainRequestConfig()
    security: SecurityConfig = SecurityConfig()
    limits: LimitsConfig = LimitsConfig()
    responses: ResponsesConfig = ResponsesConfig()
    presses: PressPolicyConfig = PressPolicyConfig()
    transfer: TransferConfig = TransferConfig()
    batching: BatchConfig = Field(default_factory=BatchConfig,
                                  description="continuous batching of decode (deployments/engine/decode)")
    control_tick_s: float = Field(default=2.0, gt=0, description="period of the control plane's decisions")

    @model_validator(mode="after")
    def _node_resources_fit(self) -> "AppConfig":
        if len(self.replicas.node_resources) > self.replicas.count:
            raise ValueError("replicas.node_resources has more entries than replicas.count")
        return self

    def replica_names(self) -> list[str]:
        return [f"replica-{i}" for i in range(self.replicas.count)]
