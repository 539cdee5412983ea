"""Turn a PressSpec into a kvpress press object, validating names, ratios and kwargs.

Every failure is a ``PressSpecError`` whose message lists the valid choices, so the API can
answer 422 with something a user can act on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kvpress import BasePress

from deployments.engine.presses.budget import check_budget, takes_budget
from deployments.engine.presses.catalog import ALIASES, CATALOG, NO_PRESS_NAME, PressEntry, valid_names
from deployments.engine.presses.policy import artifact_path, custom_entries, custom_entry
from deployments.engine.presses.press_stats import set_pool_pressure
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
    rerotates: bool = False


def _init_fields(cls: type) -> set[str]:
    if not dataclasses.is_dataclass(cls):
        return set()
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _check_kinds(cls: type, press: str, kwargs: dict) -> None:
    """A kwarg whose field has a number, bool or string default must be one too (kvpress presses are
    dataclasses that do not check types: a string ``n_sink`` would only fail inside a forward)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    for name, value in kwargs.items():
        default = defaults.get(name, dataclasses.MISSING)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            continue
        if not ok:
            raise PressSpecError(f"press {press!r} argument {name!r} must be a {type(default).__name__}, "
                                 f"got {type(value).__name__}")


def lookup(name: str) -> PressEntry:
    """The catalog entry for ``name`` or an allowlisted custom press (presses/policy.py);
    PressSpecError if unknown. An import path that is not allowlisted is never imported."""
    if ":" in name:
        return custom_entry(name)
    try:
        return CATALOG[ALIASES.get(name, name)]
    except KeyError:
        raise PressSpecError(f"unknown press {name!r}; valid presses: {', '.join(valid_names())}") from None


def _check_servable(entry: PressEntry, spec: PressSpec) -> None:
    if not entry.servable:
        raise PressSpecError(f"press {spec.name!r} cannot be served by kvfleet: it needs {entry.needs}")
    missing = [arg for arg in entry.required if spec.kwargs.get(arg) is None]
    if missing:
        raise PressSpecError(f"press {spec.name!r} needs {entry.needs}; missing: {', '.join(missing)}. "
                             "kvfleet never downloads artifacts at run time")


def _construct(entry: PressEntry, spec: PressSpec, inner: list[BasePress]) -> BasePress:
    fields = _init_fields(entry.press_class)
    kwargs = dict(spec.kwargs)
    if spec.target_tokens is not None and entry.phase == "decoding":
        kwargs["target_size"] = spec.target_tokens
    unknown = set(kwargs) - fields
    if unknown:
        allowed = sorted(fields - set((entry.inner or "").split(",")) - {"compression_ratio"})
        raise PressSpecError(f"press {spec.name!r} has no argument(s) {sorted(unknown)}; "
                             f"valid arguments: {allowed or 'none'}")
    _check_kinds(entry.press_class, spec.name, kwargs)
    for arg in entry.artifact_args:
        if arg in kwargs:
            kwargs[arg] = str(artifact_path(kwargs[arg], spec.name))
    if entry.inner == "presses":
        kwargs["presses"] = inner
    elif entry.inner is not None:
        slots = entry.inner.split(",")
        if len(inner) != len(slots):
            raise PressSpecError(f"press {spec.name!r} wraps exactly {len(slots)} inner press(es) in 'presses' "
                                 f"({', '.join(slots)}), got {len(inner)}")
        kwargs.update(zip(slots, inner))
    _check_servable(entry, spec)
    try:
        press = entry.press_class(**kwargs)
        if spec.compression_ratio:
            if entry.inner == "presses" or not hasattr(press, "compression_ratio"):
                raise PressSpecError(f"press {spec.name!r} takes no compression_ratio; set it on its inner presses")
            press.compression_ratio = spec.compression_ratio
    except (AssertionError, TypeError, ValueError) as exc:
        raise PressSpecError(f"invalid arguments for press {spec.name!r}: {exc or type(exc).__name__}") from exc
    return press


def resolve(spec: PressSpec, pool_pressure: float | None = None) -> ResolvedPress:
    """Build the press described by ``spec`` (recursively for wrappers).

    ``pool_pressure``: the replica's KV pool use (bytes held / byte budget, [0, 1]) at load time,
    read by ``cache_aware`` presses (moe_router); None when no pool is known.
    Raises PressSpecError (HTTP 422) with the valid choices: unknown name or argument, a missing
    artifact path, a token budget on a press that cannot take one.
    """
    resolved = _resolve(spec)
    set_pool_pressure(resolved.press, pool_pressure)
    return resolved


def _resolve(spec: PressSpec) -> ResolvedPress:
    if spec.name == NO_PRESS_NAME:
        if spec.presses or spec.kwargs or spec.compression_ratio:
            raise PressSpecError("press 'none' takes no compression_ratio, kwargs or inner presses")
        return ResolvedPress(spec, None, True, False, "prefill", None)
    entry = lookup(spec.name)
    if spec.target_tokens is not None:
        check_budget(entry, spec.name)
    if entry.inner is None and spec.presses:
        raise PressSpecError(f"press {spec.name!r} does not wrap other presses; remove 'presses'")
    if entry.inner is not None and not spec.presses:
        raise PressSpecError(f"press {spec.name!r} wraps inner presses: give them in 'presses', e.g. "
                             f"{{'name': '{spec.name}', 'presses': [{{'name': 'knorm'}}]}}")
    inner = [_resolve(child) for child in spec.presses]
    press = _construct(entry, spec, [child.press for child in inner])
    agnostic = entry.query_agnostic if entry.query_agnostic is not None else all(c.query_agnostic for c in inner)
    per_head = entry.per_head or any(c.per_head for c in inner)
    attn = entry.attn_implementation or next((c.attn_implementation for c in inner if c.attn_implementation), None)
    rerotates = (entry.rerotates and bool(getattr(press, "rerotate_keys", True))) or any(c.rerotates for c in inner)
    return ResolvedPress(spec, press, agnostic, per_head, entry.phase, attn, rerotates)


def describe_presses() -> list[dict]:
    """The catalog as JSON-able rows (for `GET /v1/presses` and docs). ``batched_decode``: answers on
    a cache made with this press are continuously batched; False for decoding-time presses, whose
    generations decode one request per forward (docs/batched-decode.md)."""
    rows = [{"name": NO_PRESS_NAME, "query_agnostic": True, "per_head": False, "wraps": None, "phase": "prefill",
             "batched_decode": True, "summary": "no compression", "arguments": [], "required": [], "needs": None,
             "servable": True, "target_tokens": False}]
    for entry in [*CATALOG.values(), *custom_entries()]:
        rows.append({"name": entry.name, "query_agnostic": entry.query_agnostic, "per_head": entry.per_head,
                     "wraps": entry.inner, "phase": entry.phase, "batched_decode": entry.phase == "prefill",
                     "summary": entry.summary,
                     "arguments": sorted(_init_fields(entry.press_class) - set((entry.inner or "").split(","))),
                     "required": list(entry.required), "needs": entry.needs, "servable": entry.servable,
                     "target_tokens": takes_budget(entry)})
    return rows
