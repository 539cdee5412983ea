"""Turn a PressSpec into a kvpress press object, validating names, ratios and kwargs.

Every failure is a ``PressSpecError`` whose message lists the valid choices, so the API can
answer 422 with something a user can act on.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass

from kvpress import BasePress

from deployments.engine.presses.catalog import CATALOG, NO_PRESS_NAME, PressEntry, valid_names
from kvpool.errors import PressSpecError
from kvpool.press_spec import PressSpec


@dataclass(frozen=True)
class ResolvedPress:
    """A ready-to-use press plus what the engine and pool need to know about it.

    ``press`` is None for "none" (no compression). Build a fresh one per request: kvpress presses
    keep per-call state (decoding buffers, scores), so one object must not serve two requests.
    """

    spec: PressSpec
    press: BasePress | None
    query_agnostic: bool
    per_head: bool
    phase: str
    attn_implementation: str | None


def _init_fields(cls: type) -> set[str]:
    if not dataclasses.is_dataclass(cls):
        return set()
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _custom_entry(name: str) -> PressEntry:
    module_name, _, class_name = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise PressSpecError(f"custom press {name!r} cannot be imported ({exc}); "
                             "use 'package.module:ClassName' of an importable BasePress subclass") from exc
    if not (isinstance(cls, type) and issubclass(cls, BasePress)):
        raise PressSpecError(f"custom press {name!r} is not a kvpress BasePress subclass")
    return PressEntry(name, cls, bool(getattr(cls, "query_agnostic", False)),
                      per_head=bool(getattr(cls, "per_head", False)), summary="custom press")


def lookup(name: str) -> PressEntry:
    """The catalog entry for ``name`` (or an importable custom press); PressSpecError if unknown."""
    if ":" in name:
        return _custom_entry(name)
    try:
        return CATALOG[name]
    except KeyError:
        raise PressSpecError(f"unknown press {name!r}; valid presses: {', '.join(valid_names())}, "
                             "or a custom press as 'package.module:ClassName'") from None


def _construct(entry: PressEntry, spec: PressSpec, inner: list[BasePress]) -> BasePress:
    fields = _init_fields(entry.press_class)
    kwargs = dict(spec.kwargs)
    unknown = set(kwargs) - fields
    if unknown:
        allowed = sorted(fields - set((entry.inner or "").split(",")) - {"compression_ratio"})
        raise PressSpecError(f"press {spec.name!r} has no argument(s) {sorted(unknown)}; "
                             f"valid arguments: {allowed or 'none'}")
    if entry.inner == "presses":
        kwargs["presses"] = inner
    elif entry.inner is not None:
        slots = entry.inner.split(",")
        if len(inner) != len(slots):
            raise PressSpecError(f"press {spec.name!r} wraps exactly {len(slots)} inner press(es) in 'presses' "
                                 f"({', '.join(slots)}), got {len(inner)}")
        kwargs.update(zip(slots, inner))
    try:
        press = entry.press_class(**kwargs)
        if spec.compression_ratio:
            if entry.inner == "presses" or not hasattr(press, "compression_ratio"):
                raise PressSpecError(f"press {spec.name!r} takes no compression_ratio; set it on its inner presses")
            press.compression_ratio = spec.compression_ratio
    except (AssertionError, TypeError, ValueError) as exc:
        raise PressSpecError(f"invalid arguments for press {spec.name!r}: {exc or type(exc).__name__}") from exc
    return press


def resolve(spec: PressSpec) -> ResolvedPress:
    """Build the press described by ``spec`` (recursively for wrappers)."""
    if spec.name == NO_PRESS_NAME:
        if spec.presses or spec.kwargs or spec.compression_ratio:
            raise PressSpecError("press 'none' takes no compression_ratio, kwargs or inner presses")
        return ResolvedPress(spec, None, True, False, "prefill", None)
    entry = lookup(spec.name)
    if entry.inner is None and spec.presses:
        raise PressSpecError(f"press {spec.name!r} does not wrap other presses; remove 'presses'")
    if entry.inner is not None and not spec.presses:
        raise PressSpecError(f"press {spec.name!r} wraps inner presses: give them in 'presses', e.g. "
                             f"{{'name': '{spec.name}', 'presses': [{{'name': 'knorm'}}]}}")
    inner = [resolve(child) for child in spec.presses]
    press = _construct(entry, spec, [child.press for child in inner])
    agnostic = entry.query_agnostic if entry.query_agnostic is not None else all(c.query_agnostic for c in inner)
    per_head = entry.per_head or any(c.per_head for c in inner)
    attn = entry.attn_implementation or next((c.attn_implementation for c in inner if c.attn_implementation), None)
    return ResolvedPress(spec, press, agnostic, per_head, entry.phase, attn)


def describe_presses() -> list[dict]:
    """The catalog as JSON-able rows (for `GET /v1/presses` and docs). ``batched_decode``: answers on
    a cache made with this press are continuously batched; False for decoding-time presses, whose
    generations decode one request per forward (docs/batched-decode.md)."""
    rows = [{"name": NO_PRESS_NAME, "query_agnostic": True, "per_head": False, "wraps": None, "phase": "prefill",
             "batched_decode": True, "summary": "no compression"}]
    for entry in CATALOG.values():
        rows.append({"name": entry.name, "query_agnostic": entry.query_agnostic, "per_head": entry.per_head,
                     "wraps": entry.inner, "phase": entry.phase, "batched_decode": entry.phase == "prefill",
                     "summary": entry.summary,
                     "arguments": sorted(_init_fields(entry.press_class) - set((entry.inner or "").split(",")))})
    return rows
