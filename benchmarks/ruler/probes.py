"""What a RULER-style item is and how its answer is scored.

A ``Probe`` is one question with the value(s) its answer must contain; a ``SuiteDocument`` is one
context (prose or chat messages) with the probes asked on it. One document is prefilled once per
press and every probe is answered from a copy of that one compressed cache.

Scoring follows RULER's string match (Hsieh et al. 2024, "RULER: What's the Real Context Size of
Your Long-Context Language Models?", ``string_match_all``): every expected value must appear in
the answer (case-insensitive; numbers not inside a longer number). One addition for a weak model
that lists what it saw: a probe also carries the ``distractors`` planted next to its answer, and
an answer that names a distractor *before* the expected value is wrong.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

Context = str | list[dict[str, str]]


@dataclass(frozen=True)
class Probe:
    """``answers``: every value the answer must contain; ``kind``: the needle kind (number, name,
    word, code, uuid, variable, aggregate, or a question-set kind); ``depth`` in [0, 1] (where the
    first answer sits in the context, by characters; -1 when spread over the whole context)."""

    question: str
    answers: tuple[str, ...]
    kind: str
    depth: float
    distractors: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuiteDocument:
    """One context and its probes. ``family``: ``ruler`` or an existing question set
    (``document``, ``chat``); ``seed`` decides the split (choose on even seeds, report on odd)."""

    doc_id: str
    family: str
    task: str
    seed: int
    target_tokens: int
    context: Context
    probes: tuple[Probe, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, with_context: bool = False) -> dict[str, Any]:
        data = {"doc_id": self.doc_id, "family": self.family, "task": self.task, "seed": self.seed,
                "target_tokens": self.target_tokens, "probes": [asdict(p) for p in self.probes]}
        if with_context:
            data["context"] = self.context
        return data


def _position(answer: str, value: str) -> int | None:
    """Where ``value`` first occurs in ``answer`` (case-insensitive, not inside a longer
    number or word), or None."""
    pattern = r"(?<![0-9A-Za-z])" + re.escape(value.lower()) + r"(?![0-9A-Za-z])"
    match = re.search(pattern, answer.lower())
    return None if match is None else match.start()


def score(answer: str, probe: Probe) -> bool:
    """True if ``answer`` contains every expected value and no distractor comes before the first one."""
    positions = [_position(answer, value) for value in probe.answers]
    if any(p is None for p in positions):
        return False
    first = min(positions)
    return not any((p := _position(answer, d)) is not None and p < first for d in probe.distractors)
