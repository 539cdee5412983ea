"""Turn a request's generation controls into ``SamplingParams`` fields, or a 400 that names what is
wrong - before anything is placed or reaches a model. Shared by ``/v1/chat/completions`` and
``/v1/completions``: both request models carry the fields below under the same names.

Accepted (one structured-output constraint per request):

- OpenAI: ``response_format`` ``{"type": "text" | "json_object"}`` or
  ``{"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}``;
  ``presence_penalty``, ``frequency_penalty`` ([-2, 2]); ``logit_bias`` (token id string -> bias
  in [-100, 100], at most 300 entries, ids inside the vocabulary).
- vLLM: ``repetition_penalty`` (> 0, at most 2), ``min_tokens``, ``stop_token_ids`` (at most 64 ids
  inside the vocabulary), ``top_k`` (-1 or 0: all tokens),
  ``min_p`` ([0, 1]); the structured-output extras
  ``guided_json``, ``guided_regex``, ``guided_choice``, ``guided_grammar`` and the newer
  ``structured_outputs`` object (``json``, ``regex``, ``choice``, ``grammar``, ``json_object``).

A schema or grammar is compiled by llguidance here (``grammar_of``, cached per spec); a feature it
does not implement is a 400 ``unsupported_schema`` naming it (``Unimplemented keys: ["if"]``).
"""

from __future__ import annotations

import json
from typing import Any

from deployments.engine.sampling import GuidedSpec
from deployments.engine.sampling.grammar import GrammarError, grammar_of
from deployments.engine.sampling.params import LOGIT_BIAS_LIMIT, LOGIT_BIAS_MAX_ENTRIES
from deployments.ingress.errors import APIError
from deployments.ingress.guards.limits import check_vocabulary

_STRUCTURED_KEYS = {"json": "json_schema", "regex": "regex", "choice": "choice", "grammar": "grammar",
                    "json_object": "json_object"}


def _bad(message: str, code: str = "invalid_request", param: str | None = None) -> APIError:
    error = APIError(400, message, code)
    error.param = param
    return error


def request_controls(req: Any, vocab_size: int) -> dict[str, Any]:
    """``SamplingParams`` fields for ``req``'s penalties, bias, min_tokens, top_k / min_p and
    structured output (``req``: a ``ChatCompletionRequest`` or a ``CompletionRequest``)."""
    check_vocabulary(req.stop_token_ids or [], vocab_size, "stop_token_ids")
    controls: dict[str, Any] = {
        "top_k": max(req.top_k or 0, 0),
        "min_p": req.min_p or 0.0,
        "presence_penalty": req.presence_penalty or 0.0,
        "frequency_penalty": req.frequency_penalty or 0.0,
        "repetition_penalty": 1.0 if req.repetition_penalty is None else req.repetition_penalty,
        "min_tokens": req.min_tokens or 0,
        "logit_bias": _logit_bias(req.logit_bias or {}, vocab_size),
        "stop_token_ids": list(req.stop_token_ids or []),
    }
    guided = guided_spec(req)
    if guided is not None:
        if req.ignore_eos:
            raise _bad("ignore_eos cannot be combined with a structured output (the grammar ends the answer)",
                       param="ignore_eos")
        try:
            grammar_of(guided)
        except GrammarError as exc:
            raise _bad(str(exc), "unsupported_schema", "response_format") from exc
        controls["guided"] = guided.model_dump(mode="json")
    return controls


def _logit_bias(bias: dict[str, float], vocab_size: int) -> dict[int, float]:
    if len(bias) > LOGIT_BIAS_MAX_ENTRIES:
        raise _bad(f"logit_bias has {len(bias)} entries; at most {LOGIT_BIAS_MAX_ENTRIES}", param="logit_bias")
    out: dict[int, float] = {}
    for key, value in bias.items():
        if not key.strip().lstrip("-").isdigit():
            raise _bad(f"logit_bias key {key!r} is not a token id (an integer as a string)", param="logit_bias")
        token = int(key)
        if not 0 <= token < vocab_size:
            raise _bad(f"logit_bias token id {token} is outside this model's vocabulary (0..{vocab_size - 1})",
                       param="logit_bias")
        if not -LOGIT_BIAS_LIMIT <= value <= LOGIT_BIAS_LIMIT:
            raise _bad(f"logit_bias[{key}] = {value} is outside [-100, 100]", param="logit_bias")
        out[token] = float(value)
    return out


def guided_spec(req: Any) -> GuidedSpec | None:
    """The one structured-output constraint of ``req`` (None for plain text); 400 if several are given."""
    found: list[tuple[str, GuidedSpec]] = []
    if req.response_format is not None:
        spec = _response_format(req.response_format)
        if spec is not None:
            found.append(("response_format", spec))
    for field, kind in (("guided_json", "json_schema"), ("guided_regex", "regex"),
                        ("guided_choice", "choice"), ("guided_grammar", "grammar")):
        value = getattr(req, field)
        if value is not None:
            found.append((field, _spec(kind, value, field)))
    if req.structured_outputs is not None:
        found.extend(_structured_outputs(req.structured_outputs))
    if len(found) > 1:
        raise _bad(f"give one structured-output constraint, not {len(found)} ({', '.join(f for f, _ in found)})")
    return found[0][1] if found else None


def _response_format(value: dict[str, Any]) -> GuidedSpec | None:
    kind = value.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return GuidedSpec(kind="json_object")
    if kind == "json_schema":
        body = value.get("json_schema")
        if not isinstance(body, dict) or not isinstance(body.get("schema"), dict):
            raise _bad("response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}",
                       param="response_format")
        if not isinstance(body.get("name"), str) or not body["name"]:
            raise _bad("response_format json_schema needs a 'name'", param="response_format")
        return _spec("json_schema", body["schema"], "response_format")
    raise _bad(f"response_format type {kind!r} is not supported; use 'text', 'json_object' or 'json_schema'",
               param="response_format")


def _structured_outputs(value: dict[str, Any]) -> list[tuple[str, GuidedSpec]]:
    unknown = sorted(set(value) - set(_STRUCTURED_KEYS) - {"disable_fallback"})
    if unknown:
        raise _bad(f"structured_outputs fields {unknown} are not supported; use one of {sorted(_STRUCTURED_KEYS)}",
                   param="structured_outputs")
    out = []
    for key, kind in _STRUCTURED_KEYS.items():
        given = value.get(key)
        if given is None or given is False:
            continue
        out.append((f"structured_outputs.{key}",
                    GuidedSpec(kind="json_object") if kind == "json_object" else _spec(kind, given, "structured_outputs")))
    return out


def _spec(kind: str, value: Any, param: str) -> GuidedSpec:
    if kind == "json_schema":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _bad(f"{param}: the JSON schema is not valid JSON ({exc})", param=param) from exc
        if not isinstance(value, dict):
            raise _bad(f"{param}: a JSON schema must be an object", param=param)
        return GuidedSpec(kind=kind, spec=json.dumps(value, sort_keys=True))
    if kind == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
            raise _bad(f"{param}: choice must be a non-empty list of strings", param=param)
        return GuidedSpec(kind=kind, spec=json.dumps(value))
    if not isinstance(value, str) or not value:
        raise _bad(f"{param}: {kind} must be a non-empty string", param=param)
    return GuidedSpec(kind=kind, spec=value)
