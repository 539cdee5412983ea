"""JSON Schema of a ``kvfleet bench run`` result (what the smoke test and ``report`` rely on).

Only structure and types are fixed here, plus the sanity bounds any run must satisfy (accuracies
in [0, 1], positive byte counts and times); the values themselves are measurements.
"""

from __future__ import annotations

from typing import Any

_NUM = {"type": "number"}
_POS = {"type": "number", "exclusiveMinimum": 0}
_NONNEG = {"type": "number", "minimum": 0}
_OPT_POS = {"type": ["number", "null"], "exclusiveMinimum": 0}


def _summary(unit: str) -> dict[str, Any]:
    """timing.summarize output: n plus median/p95/... (None when n == 0)."""
    value = {"type": ["number", "null"], "minimum": 0}
    return {"type": "object", "required": ["n", f"median_{unit}", f"p95_{unit}"],
            "properties": {"n": {"type": "integer", "minimum": 0}, f"median_{unit}": value, f"p95_{unit}": value}}


PROVENANCE = {
    "machine": {"type": "object", "required": ["cpu", "cores", "memory_gib", "python", "load_average"]},
    "versions": {"type": "object", "required": ["torch", "transformers", "kvpress", "ray"]},
    "git": {"type": "object", "required": ["commit"]},
    "config": {"type": "object", "required": ["mode", "sections"]},
    "runtime_s": _POS,
}

ACCURACY_ROW = {"type": "object",
                "required": ["press", "compression_ratio", "codec", "questions", "correct", "accuracy"],
                "properties": {"press": {"type": "string"}, "compression_ratio": {"type": "number", "minimum": 0,
                                                                                   "maximum": 1},
                               "codec": {"enum": ["none", "int8"]}, "questions": {"type": "integer", "minimum": 1},
                               "correct": {"type": "integer", "minimum": 0},
                               "accuracy": {"type": "number", "minimum": 0, "maximum": 1}}}

CAPACITY_ROW = {"type": "object", "required": ["press", "compression_ratio", "bytes_per_session", "sessions_held",
                                               "goal_gain", "method"],
                "properties": {"bytes_per_session": _POS, "bytes_per_session_int8": _OPT_POS,
                               "sessions_held": {"type": "integer", "minimum": 1}, "goal_gain": _POS}}

LATENCY_ROW = {"type": "object", "required": ["series", "concurrency", "target_tokens", "context_tokens", "requests",
                                              "ttft", "total", "decode_tokens_per_s"],
               "properties": {"series": {"enum": ["session", "plain_full", "plain_prefix"]},
                              "concurrency": {"type": "integer", "minimum": 1},
                              "context_tokens": {"type": "integer", "minimum": 1},
                              "requests": {"type": "integer", "minimum": 0},
                              "ttft": _summary("s"), "total": _summary("s"),
                              "decode_tokens_per_s": _summary("tok_s")}}

MIGRATION_ROW = {"type": "object", "required": ["context_tokens", "bytes", "reprefill"],
                 "properties": {"context_tokens": {"type": "integer", "minimum": 1}, "bytes": _POS,
                                "reprefill": _summary("s")}}

ENGINE = {"type": "object", "required": ["ttft", "bytes"],
          "properties": {
              "ttft": {"type": "array", "minItems": 1, "items": {
                  "type": "object", "required": ["context_tokens", "question_tokens", "stored_compressed",
                                                 "stored_full", "reprefill"],
                  "properties": {"stored_compressed": _summary("s"), "stored_full": _summary("s"),
                                 "reprefill": _summary("s")}}},
              "bytes": {"type": "array", "minItems": 1, "items": {
                  "type": "object", "required": ["press", "compression_ratio", "bytes", "bytes_int8"],
                  "properties": {"bytes": _POS, "bytes_int8": _POS}}},
              "model_load": {"type": ["object", "null"]}}}

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["benchmark", *PROVENANCE],
    "properties": {
        **PROVENANCE,
        "benchmark": {"const": "serving"},
        "engine": ENGINE,
        "quality": {"type": "object", "required": ["jobs", "accuracy", "int8_path"],
                    "properties": {"accuracy": {"type": "array", "minItems": 1, "items": ACCURACY_ROW}}},
        "capacity": {"type": "object", "required": ["budget_bytes", "rows"],
                     "properties": {"budget_bytes": _POS, "rows": {"type": "array", "minItems": 1,
                                                                   "items": CAPACITY_ROW}}},
        "latency": {"type": "object", "required": ["rows", "plain_prefix_wired", "plain_prefix_note"],
                    "properties": {"rows": {"type": "array", "minItems": 1, "items": LATENCY_ROW}}},
        "migration": {"type": "object", "required": ["rows", "backends"],
                      "properties": {"rows": {"type": "array", "minItems": 1, "items": MIGRATION_ROW}}},
    },
}


def validate(result: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if ``result`` does not match RESULT_SCHEMA."""
    import jsonschema

    jsonschema.validate(result, RESULT_SCHEMA)
