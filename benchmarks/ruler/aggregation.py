"""Aggregation (RULER's common-words extraction ``cwe``, in the form a small model can answer).

A numbered list of made-up words: one word appears many times (about a tenth of the entries),
every other word once or twice. The probe asks for the most common word; every other word of the
list is a distractor (naming one first is wrong). RULER asks for the ten most common words, which
the embedded 135M model never answers uncompressed.
"""

from __future__ import annotations

import random

from benchmarks.ruler.haystack import TokenCounter
from benchmarks.ruler.probes import Probe, SuiteDocument

PREAMBLE = ("Below is a numbered list of words. In these words, one appears more often than the others. "
            "Memorize the one that appears most often.\n\n")
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fa", "gu", "pi", "ze", "ha", "jo")


def _word(rng: random.Random, taken: set[str]) -> str:
    while True:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(3))
        if word not in taken:
            taken.add(word)
            return word


def _entries(rng: random.Random, n: int) -> tuple[str, list[str]]:
    taken: set[str] = set()
    top = _word(rng, taken)
    repeats = max(4, n // 10)
    others: list[str] = []
    while len(others) < n - repeats:
        word = _word(rng, taken)
        others += [word] * rng.choice((1, 1, 2))
    words = [top] * repeats + others[: n - repeats]
    rng.shuffle(words)
    return top, words


def common_words(seed: int, target_tokens: int, count: TokenCounter) -> SuiteDocument:
    rng = random.Random(f"common_words-{seed}-{target_tokens}")
    probe_top, probe_words = _entries(random.Random(f"probe-{seed}"), 40)
    per_entry = count("\n".join(f"{i + 1}. {w}" for i, w in enumerate(probe_words))) / 40
    n = max(20, round((target_tokens - count(PREAMBLE)) / per_entry))
    state = rng.getstate()
    top, words = _entries(rng, n)
    text = PREAMBLE + "\n".join(f"{i + 1}. {w}" for i, w in enumerate(words))
    fixed = count(PREAMBLE)
    n = max(20, round(n * (target_tokens - fixed) / max(1, count(text) - fixed)))  # long lists: longer numbers
    rng.setstate(state)
    top, words = _entries(rng, n)
    text = PREAMBLE + "\n".join(f"{i + 1}. {w}" for i, w in enumerate(words))
    probe = Probe("What is the most common word in the list above?", (top,), "aggregate", -1.0,
                  tuple(sorted(set(words) - {top})))
    return SuiteDocument(f"common_words-{target_tokens}-{seed}", "ruler", "common_words", seed, target_tokens, text,
                         (probe,))
