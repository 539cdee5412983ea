"""Haystacks and planting: filler text of a target token length with sentences at given depths.

Two filler styles, as in RULER (Hsieh et al. 2024): ``noise`` repeats RULER's noise sentences
("The grass is green. The sky is blue. ..."), so a needle is the only thing that is not noise;
``essay`` is natural-looking prose generated from templates (people, places, dates, counts), so
the needle competes with other names and numbers. Same ``rng`` state -> same text.
"""

from __future__ import annotations

import random
from typing import Callable

TokenCounter = Callable[[str], int]

NOISE = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.")
STYLES = ("noise", "essay")

_PEOPLE = ("the mayor", "a retired teacher", "the harbour master", "an engineer from the north", "the librarian",
           "a young carpenter", "the head nurse", "a travelling merchant", "the school principal", "an old fisherman")
_PLACES = ("the coastal town", "the valley", "the old mill", "the railway station", "the market hall",
           "the village school", "the river crossing", "the lighthouse", "the city archive", "the mountain pass")
_ACTS = ("proposed a plan to rebuild", "wrote a long report about", "organised a meeting at", "raised money for",
         "painted a picture of", "complained about the noise near", "kept a diary about", "gave a speech at",
         "spent a quiet summer near", "drew a careful map of")
_AFTER = ("Few people remembered it a year later.", "The newspaper printed a short note about it.",
          "Most neighbours agreed that it was a sensible idea.", "Nobody could say exactly why it mattered.",
          "It rained for most of that week.", "The weather was mild and the roads were dry.",
          "Children played in the streets until late.", "The shops closed early on that day.")


def _essay_sentence(rng: random.Random) -> str:
    year, count = rng.randint(1890, 2015), rng.randint(2, 90)
    first = rng.choice((
        f"In {year}, {rng.choice(_PEOPLE)} {rng.choice(_ACTS)} {rng.choice(_PLACES)}.",
        f"About {count} people came to {rng.choice(_PLACES)} when {rng.choice(_PEOPLE)} arrived.",
        f"{rng.choice(_PEOPLE).capitalize()} {rng.choice(_ACTS)} {rng.choice(_PLACES)} in {year}.",
        f"For {count} days {rng.choice(_PEOPLE)} stayed at {rng.choice(_PLACES)}."))
    return f"{first} {rng.choice(_AFTER)}"


def filler(style: str, rng: random.Random, sentences: int) -> list[str]:
    """``sentences`` filler units of ``style``; ValueError on an unknown style."""
    if style == "noise":
        return [NOISE] * sentences
    if style == "essay":
        return [_essay_sentence(rng) for _ in range(sentences)]
    raise ValueError(f"unknown haystack style {style!r}; valid: {', '.join(STYLES)}")


def plant(style: str, rng: random.Random, preamble: str, facts: list[tuple[str, float]], target_tokens: int,
          count: TokenCounter) -> tuple[str, list[float]]:
    """``preamble`` + filler of about ``target_tokens`` tokens in all, with each ``(sentence, depth)``
    of ``facts`` inserted at relative ``depth`` (0 start, 1 end) of the filler. Returns the text and
    each fact's relative depth in the whole text (by characters), in the order of ``facts``."""
    pool = filler(style, rng, max(16, target_tokens // 8))
    per_unit = count(" ".join(pool[:16])) / 16
    fixed = count(preamble) + sum(count(f) for f, _ in facts)
    n = max(2, round((target_tokens - fixed) / per_unit))
    text, _ = _interleave(pool, n, preamble, facts)
    n = max(2, round(n * (target_tokens - fixed) / max(1, count(text) - fixed)))
    return _interleave(pool, n, preamble, facts)


def _interleave(pool: list[str], n: int, preamble: str, facts: list[tuple[str, float]]) -> tuple[str, list[float]]:
    units = [pool[i % len(pool)] for i in range(n)]
    slots = [min(n, round(depth * n)) for _, depth in facts]
    parts: list[str] = []
    starts: dict[int, int] = {}
    for i in range(n + 1):
        for j, slot in enumerate(slots):
            if slot == i:
                starts[j] = sum(len(p) + 1 for p in parts)
                parts.append(facts[j][0])
        if i < n:
            parts.append(units[i])
    text = preamble + " ".join(parts)
    return text, [round((len(preamble) + starts[j]) / len(text), 3) for j in range(len(facts))]
