"""Seeded quality tasks: needle-in-a-haystack and multi-question document QA.

Both build a ``QADocument``: a context of about ``target_tokens`` tokens (counted with the
tokenizer passed in) and the questions to ask on it, each with its expected answer and the
relative depth (0 = start, 1 = end) at which its fact sits. The context opens with the
passkey-retrieval preamble ("There is important information hidden inside a lot of irrelevant
text...") and the facts sit in bland filler prose.

- ``needle_document``: 5 four-digit codes, each under its own key ("The secret PIN of the old
  safe is 9117."), at evenly spaced depths. The keys are distinct so that the task is retrieval
  rather than disambiguation; the other codes are still distractors for a cache that lost the
  right one.
- ``facts_document``: 5 word-valued facts about one fictional country (flag colour, national
  animal, main export, capital, ...), one question each.

Calibration (embedded SmolLM2-135M, uncompressed, 1.5k tokens): the 135M model fails on
person -> attribute binding (two biographies: 1/6 correct) and on generic filler that reads like
an answer ("The details were written in a grey notebook."); with distinct keys, a preamble and
bland filler it answers most needles. Same ``seed`` and tokenizer -> the same document.

Scoring, ``exact_match(answer, expected, kind)``: codes - the first 4-digit number of the answer
is the code; words - the first word of the answer that belongs to the fact's option list is the
expected one (so "purple, not green" is right and "green or purple" is wrong).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable

TokenCounter = Callable[[str], int]

PREAMBLE = ("There is important information hidden inside a lot of irrelevant text. Find it and memorize it. "
            "I will quiz you about the important information there.\n\n")

_SUBJECTS = ("The old harbour", "A quiet village", "The northern railway", "The city council", "A travelling choir",
             "The river valley", "The market square", "A small bakery", "The university library",
             "The weather station", "An orchard on the hill", "The ferry company", "The museum of clocks",
             "A mountain hut", "The school garden")
_VERBS = ("was repainted", "was mentioned in the newspaper", "hosted a long meeting", "changed its opening hours",
          "received a letter of thanks", "was visited by tourists", "prepared for the winter", "ordered new chairs",
          "was measured by surveyors", "planned a summer festival", "lost a set of keys", "repaired its roof")
_WHEN = ("last spring", "on a rainy Tuesday", "after the harvest", "before the storm", "in the early morning",
         "during the holidays", "late in the evening", "at the end of the month", "two years ago", "at dawn")

NEEDLE_KEYS = (
    ("The access code for the north door is {v}.", "What is the access code for the north door?"),
    ("The serial number of the red bicycle is {v}.", "What is the serial number of the red bicycle?"),
    ("The secret PIN of the old safe is {v}.", "What is the secret PIN of the old safe?"),
    ("The winning lottery ticket has the number {v}.", "What is the number of the winning lottery ticket?"),
    ("The phone extension of the museum director is {v}.", "What is the phone extension of the museum director?"),
    ("The yellow truck has the license plate {v}.", "What is the license plate of the yellow truck?"),
    ("The password of the library computer is {v}.", "What is the password of the library computer?"),
    ("The locker of the swimming coach has the number {v}.", "What is the number of the swimming coach's locker?"),
)

COUNTRIES = ("Veltria", "Norlandia", "Kesmaria", "Oradia", "Tulmeria", "Brevonia", "Quastia", "Lindora")
FACT_SLOTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "colour": ("The flag of {c} is mostly {v}.", "What colour is the flag of {c}?",
               ("purple", "green", "orange", "yellow", "silver", "crimson", "turquoise", "brown")),
    "animal": ("The national animal of {c} is the {v}.", "What is the national animal of {c}?",
               ("otter", "falcon", "badger", "lynx", "heron", "tortoise", "walrus", "beaver")),
    "export": ("The main export of {c} is {v}.", "What is the main export of {c}?",
               ("copper", "timber", "wool", "salt", "cotton", "marble", "coffee", "tin")),
    "capital": ("The capital of {c} is {v}.", "What is the capital of {c}?",
                ("Norhaven", "Easmoor", "Tallbridge", "Quenby", "Ostrel", "Marrowick", "Dunmere", "Pellham")),
    "sport": ("The favourite sport in {c} is {v}.", "What is the favourite sport in {c}?",
              ("rugby", "tennis", "cricket", "hockey", "rowing", "fencing", "archery", "cycling")),
    "instrument": ("The national instrument of {c} is the {v}.", "What is the national instrument of {c}?",
                   ("harp", "violin", "flute", "drum", "lute", "trumpet", "accordion", "bagpipe")),
}


@dataclass(frozen=True)
class QAItem:
    """One question with its expected answer; ``kind`` picks the scorer ("code" or a FACT_SLOTS key),
    ``depth`` in [0, 1]."""

    question: str
    answer: str
    kind: str
    depth: float


@dataclass(frozen=True)
class QADocument:
    doc_id: str
    task: str
    context: str | list[dict[str, str]]  # text, or chat messages (quality_chat)
    items: tuple[QAItem, ...]
    target_tokens: int

    def to_json(self, with_context: bool = False) -> dict[str, Any]:
        data = {"doc_id": self.doc_id, "task": self.task, "target_tokens": self.target_tokens,
                "items": [asdict(item) for item in self.items]}
        if with_context:
            data["context"] = self.context
        return data


def filler_sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_WHEN)}."


def _plant(rng: random.Random, facts: list[str], target_tokens: int, count: TokenCounter) -> tuple[str, list[float]]:
    """PREAMBLE + filler of about ``target_tokens`` tokens in all (within ~1 %) with ``facts`` at
    evenly spaced depths. Returns the text and each fact's relative depth (by characters)."""
    pool = [filler_sentence(rng) for _ in range(max(8, target_tokens // 4))]
    per_sentence = count(" ".join(pool[:50])) / min(50, len(pool))
    fixed = count(PREAMBLE) + sum(count(f) for f in facts)
    n = max(len(facts) + 1, round((target_tokens - fixed) / per_sentence))
    text, _ = _interleave(pool, n, facts)
    n = max(len(facts) + 1, round(n * (target_tokens - fixed) / max(1, count(text) - fixed)))
    return _interleave(pool, n, facts)


def _interleave(pool: list[str], n: int, facts: list[str]) -> tuple[str, list[float]]:
    sentences = [pool[i % len(pool)] for i in range(n)]
    slots = [round((i + 0.5) * n / len(facts)) for i in range(len(facts))]
    parts: list[str] = []
    depths_at: list[int] = []
    for i, sentence in enumerate(sentences):
        for fact, slot in zip(facts, slots):
            if slot == i:
                depths_at.append(sum(len(p) + 1 for p in parts))
                parts.append(fact)
        parts.append(sentence)
    text = PREAMBLE + " ".join(parts)
    return text, [round((len(PREAMBLE) + at) / len(text), 3) for at in depths_at]


def needle_document(seed: int, target_tokens: int, count: TokenCounter, needles: int = 5) -> QADocument:
    """``needles`` four-digit codes under distinct keys at evenly spaced depths (one question each)."""
    rng = random.Random(f"needle-{seed}")
    keys = rng.sample(NEEDLE_KEYS, needles)
    codes = [str(c) for c in rng.sample(range(1000, 10000), needles)]
    text, depths = _plant(rng, [fact.format(v=code) for (fact, _), code in zip(keys, codes)], target_tokens, count)
    items = tuple(QAItem(question, code, "code", depth) for (_, question), code, depth in zip(keys, codes, depths))
    return QADocument(f"needle-{target_tokens}-{seed}", "needle", text, items, target_tokens)


def facts_document(seed: int, target_tokens: int, count: TokenCounter, facts: int = 5) -> QADocument:
    """``facts`` word-valued facts about one fictional country, in shuffled order (one question each)."""
    rng = random.Random(f"facts-{seed}")
    country = rng.choice(COUNTRIES)
    slots = rng.sample(sorted(FACT_SLOTS), facts)
    values = [rng.choice(FACT_SLOTS[slot][2]) for slot in slots]
    sentences = [FACT_SLOTS[slot][0].format(c=country, v=value) for slot, value in zip(slots, values)]
    text, depths = _plant(rng, sentences, target_tokens, count)
    items = tuple(QAItem(FACT_SLOTS[slot][1].format(c=country), value, slot, depth)
                  for slot, value, depth in zip(slots, values, depths))
    return QADocument(f"facts-{target_tokens}-{seed}", "facts", text, items, target_tokens)


def exact_match(answer: str, expected: str, kind: str) -> bool:
    """Whether ``answer`` gives ``expected`` (see the module docstring); ValueError on an unknown kind."""
    if kind == "code":
        match = re.search(r"(?<!\d)\d{4}(?!\d)", answer)
        return match is not None and match.group(0) == expected
    if kind not in FACT_SLOTS:
        raise ValueError(f"unknown answer kind {kind!r}; valid: code, {', '.join(sorted(FACT_SLOTS))}")
    options = {o.lower() for o in FACT_SLOTS[kind][2]}
    first = next((w for w in re.findall(r"[a-z]+", answer.lower()) if w in options), None)
    return first == expected.lower()
