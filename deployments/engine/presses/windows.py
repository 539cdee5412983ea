"""Presses that score with an observation window need a context longer than that window.

kvpress's SnapKV (and PyramidKV, which subclasses it, and every wrapper around them) asserts
``context length > window_size`` inside the forward hook; on a short context that surfaced as an
AssertionError from the model (HTTP 500). This check runs before the forward and raises a
PressSpecError (HTTP 422) that says what to change.
"""

from __future__ import annotations

from typing import Any, Iterator

from kvpress import SnapKVPress

from kvpool.errors import PressSpecError

_INNER_FIELDS = ("press", "base_press", "prefilling_press", "decoding_press")


def _tree(press: Any) -> Iterator[Any]:
    yield press
    for field in _INNER_FIELDS:
        inner = getattr(press, field, None)
        if inner is not None:
            yield from _tree(inner)
    for inner in getattr(press, "presses", None) or ():
        yield from _tree(inner)


def check_observation_window(press: Any, context_tokens: int, name: str) -> None:
    """PressSpecError when a SnapKV-style press in ``press``'s tree has ``window_size >= context_tokens``."""
    for part in _tree(press):
        if isinstance(part, SnapKVPress) and part.window_size >= context_tokens:
            raise PressSpecError(
                f"press {name!r} scores with the last window_size={part.window_size} tokens of the context "
                f"({type(part).__name__}), but the context has only {context_tokens}: give a smaller window_size, "
                f"or min_tokens > {part.window_size} so that shorter contexts are stored uncompressed")
