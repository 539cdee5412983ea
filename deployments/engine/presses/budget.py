"""Token budgets: ``PressSpec.target_tokens`` -> a compression ratio for one context.

A budget says "keep at most ``target_tokens`` tokens per head on average" instead of "drop this
fraction". For a context of ``n`` tokens the press runs at ratio ``1 - target_tokens / n``
(kvpress presses take a ratio), and not at all when ``n <= target_tokens``. Decoding presses
take the budget as their ``target_size`` (kvpress ``DecodingPress``), see builder._construct.

Which presses accept a budget: those whose ratio can be set (a ``compression_ratio`` field or
a settable property, wrappers like AdaKV included) and the decoding presses with a
``target_size``. Presses whose ratio follows from another knob (DMS's threshold, SimLayerKV's
lazy_threshold, DuoAttention's head ratio, ThinK's channels) and ``composed`` do not.
"""

from __future__ import annotations

import dataclasses
import inspect

from deployments.engine.presses.windows import check_observation_window
from kvpool.errors import PressSpecError

_DERIVED_RATIO = ("DMSPress", "SimLayerKVPress", "DuoAttentionPress")


def takes_budget(entry) -> bool:
    """Whether the catalog ``entry`` (a PressEntry) accepts ``target_tokens``."""
    cls = entry.press_class
    if entry.phase == "decoding":
        return dataclasses.is_dataclass(cls) and "target_size" in {f.name for f in dataclasses.fields(cls) if f.init}
    if entry.inner == "presses" or any(base.__name__ in _DERIVED_RATIO for base in cls.__mro__):
        return False
    attr = inspect.getattr_static(cls, "compression_ratio", None)
    if attr is None:
        return False
    return not isinstance(attr, property) or attr.fset is not None


def check_budget(entry, name: str) -> None:
    """PressSpecError listing the presses that take ``target_tokens`` when ``entry`` does not."""
    if takes_budget(entry):
        return
    from deployments.engine.presses.catalog import CATALOG

    allowed = sorted(n for n, e in CATALOG.items() if takes_budget(e))
    raise PressSpecError(f"press {name!r} cannot take target_tokens (its kept share is set by other arguments); "
                         f"presses that take a token budget: {', '.join(allowed)}")


def ratio_for_budget(target_tokens: int, context_tokens: int) -> float:
    """Compression ratio that keeps ``target_tokens`` of ``context_tokens`` (0 if it fits already)."""
    if context_tokens <= target_tokens:
        return 0.0
    return 1.0 - target_tokens / context_tokens


def prefill_press(resolved, context_tokens: int):
    """The press to prefill ``context_tokens`` with, or None to keep every token.

    None when the context is below ``spec.min_tokens``, when the press only acts while decoding,
    or when a token budget already holds the whole context; otherwise the resolved press, its
    ratio set from ``spec.target_tokens`` when a budget is given. ``resolved`` is a
    ResolvedPress built for this one request (its press object is changed in place).
    Raises PressSpecError when the context is not longer than the press's observation window.
    """
    spec = resolved.spec
    if resolved.press is None or context_tokens < spec.min_tokens or resolved.phase == "decoding":
        return None
    check_observation_window(resolved.press, context_tokens, spec.name)
    if spec.target_tokens is None:
        return resolved.press
    ratio = ratio_for_budget(spec.target_tokens, context_tokens)
    if ratio == 0.0:
        return None
    resolved.press.compression_ratio = ratio
    return resolved.press
