"""Seeded quality tasks: needle-in-a-haystack and multi-question document QA.

Both build a ``QADocument``: a context of about ``target_tokens`` tokens (counted with the
tokenizer passed in) and the questions to ask on it, each with its expected answer and the
relative depth (0 = start, 1 = end) at which the fact sits.

- ``needle_document``: ``needles`` facts "The access code for room N is XXXX." planted at evenly
  spaced depths in varied filler prose. Every room number and code is distinct, so a model
  has to bind the room it is asked about to the right code (the other codes are distractors).
- ``facts_document``: a short biography (name -> city, profession, pet, colour) for several
  fictional people, spread over the filler; one question per fact.

Same ``seed`` and tokenizer -> the same document, byte for byte. Scoring is
``exact_match(answer, expected, kind)``: the first 4-digit number of the answer for codes, the
first answer word(s) matching a candidate for the other kinds (see ``extract``).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable

TokenCounter = Callable[[str], int]

_SUBJECTS = ("The old harbour", "A quiet village", "The northern railway", "The city council", "A travelling choir",
             "The river valley", "The market square", "A small bakery", "The university library", "The weather station",
             "An orchard on the hill", "The ferry company", "The museum of clocks", "A mountain hut", "The school garden")
_VERBS = ("was repainted", "was mentioned in the newspaper", "hosted a long meeting", "changed its opening hours",
          "received a letter of thanks", "was visited by tourists", "prepared for the winter", "ordered new chairs",
          "was measured by surveyors", "planned a summer festival", "lost a set of keys", "repaired its roof")
_WHEN = ("last spring", "on a rainy Tuesday", "after the harvest", "before the storm", "in the early morning",
         "during the holidays", "late in the evening", "at the end of the month", "two years ago", "at dawn")
_EXTRA = ("Nobody remembers why.", "The details were written in a grey notebook.", "It was an ordinary day.",
          "Several people disagreed about the cost.", "The story was repeated for weeks.",
          "A photograph of it hangs in the hall.", "The records are kept in a wooden box.",
          "Children still talk about it.", "It rained most of the afternoon.", "The bells rang twice.")

_FIRST = ("Mara", "Tobias", "Ines", "Oskar", "Lena", "Viktor", "Nadia", "Felix", "Greta", "Hugo", "Elsa", "Ruben")
_LAST = ("Velt", "Brandt", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Costa", "Novak", "Hale", "Ferreira")
_CITIES = ("Lisbon", "Oslo", "Madrid", "Vienna", "Dublin", "Prague", "Warsaw", "Athens", "Berlin", "Helsinki",
           "Zurich", "Budapest")
_JOBS = ("baker", "pilot", "dentist", "carpenter", "librarian", "chemist", "farmer", "sailor", "painter", "nurse")
_PETS = ("parrot", "tortoise", "rabbit", "goldfish", "hamster", "ferret", "donkey", "goat")


@dataclass(frozen=True)
class QAItem:
    """One question with its expected answer; ``kind`` picks the extractor, ``depth`` in [0, 1]."""

    question: str
    answer: str
    kind: str
    depth: float


@dataclass(frozen=True)
class QADocument:
    doc_id: str
    task: str
    context: str
    items: tuple[QAItem, ...]
    target_tokens: int

    def to_json(self, with_context: bool = False) -> dict[str, Any]:
        data = {"doc_id": self.doc_id, "task": self.task, "target_tokens": self.target_tokens,
                "items": [asdict(item) for item in self.items]}
        if with_context:
            data["context"] = self.context
        return data


def filler_sentence(rng: random.Random) -> str:
    sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_WHEN)}."
    return f"{sentence} {rng.choice(_EXTRA)}" if rng.random() < 0.4 else sentence


def _plant(rng: random.Random, facts: list[str], target_tokens: int, count: TokenCounter) -> tuple[str, list[float]]:
    """Filler of about ``target_tokens`` tokens (within ~1 %) with ``facts`` at evenly spaced depths.

    Returns the text and each fact's actual relative depth (by characters).
    """
    pool = [filler_sentence(rng) for _ in range(max(8, target_tokens // 4))]
    per_sentence = count(" ".join(pool[:50])) / min(50, len(pool))
    fact_tokens = sum(count(f) for f in facts)
    n = max(len(facts) + 1, round((target_tokens - fact_tokens) / per_sentence))
    text, depths = _interleave(pool, n, facts)
    n = max(len(facts) + 1, round(n * (target_tokens - fact_tokens) / max(1, count(text) - fact_tokens)))
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
    text = " ".join(parts)
    return text, [round(at / len(text), 3) for at in depths_at]


def needle_document(seed: int, target_tokens: int, count: TokenCounter, needles: int = 5) -> QADocument:
    """``needles`` room access codes planted at evenly spaced depths (one question per room)."""
    rng = random.Random(f"needle-{seed}")
    rooms = rng.sample(range(100, 1000), needles)
    codes = rng.sample(range(1000, 10000), needles)
    facts = [f"The access code for room {room} is {code}." for room, code in zip(rooms, codes)]
    text, depths = _plant(rng, facts, target_tokens, count)
    items = tuple(QAItem(f"What is the access code for room {room}?", str(code), "code", depth)
                  for room, code, depth in zip(rooms, codes, depths))
    return QADocument(f"needle-{target_tokens}-{seed}", "needle", text, items, target_tokens)


def facts_document(seed: int, target_tokens: int, count: TokenCounter, people: int = 2) -> QADocument:
    """Biographies of ``people`` fictional people spread over the filler; 3 questions per person."""
    rng = random.Random(f"facts-{seed}")
    names = [f"{first} {last}" for first, last in zip(rng.sample(_FIRST, people), rng.sample(_LAST, people))]
    cities, jobs, pets = rng.sample(_CITIES, people), rng.sample(_JOBS, people), rng.sample(_PETS, people)
    facts, questions = [], []
    for name, city, job, pet in zip(names, cities, jobs, pets):
        facts += [f"{name} was born in {city}.", f"{name} works as a {job}.", f"{name} owns a {pet}."]
        questions += [(f"In which city was {name} born?", city, "word"),
                      (f"What is the profession of {name}?", job, "word"),
                      (f"What animal does {name} own?", pet, "word")]
    order = list(range(len(facts)))
    rng.shuffle(order)
    text, depths = _plant(rng, [facts[i] for i in order], target_tokens, count)
    depth_of = {fact_index: depth for fact_index, depth in zip(order, depths)}
    items = tuple(QAItem(q, a, kind, depth_of[i]) for i, (q, a, kind) in enumerate(questions))
    return QADocument(f"facts-{target_tokens}-{seed}", "facts", text, items, target_tokens)


_TASKS = {"needle": needle_document, "facts": facts_document}


def build_documents(tasks: list[str], seeds: list[int], target_tokens: int, count: TokenCounter) -> list[QADocument]:
    """One document per (task, seed); raises ValueError naming the valid tasks on an unknown one."""
    unknown = [t for t in tasks if t not in _TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid: {sorted(_TASKS)}")
    return [_TASKS[task](seed, target_tokens, count) for task in tasks for seed in seeds]


def extract(answer: str, kind: str) -> str | None:
    """The answer's first candidate of ``kind``: a 4-digit number for "code", else the text lower-cased."""
    if kind == "code":
        match = re.search(r"(?<!\d)\d{4}(?!\d)", answer)
        return match.group(0) if match else None
    return answer.strip().lower() or None


def exact_match(answer: str, expected: str, kind: str) -> bool:
    """Codes: the first 4-digit number equals ``expected``. Words: ``expected`` is the first of the
    vocabulary words of its list that occurs in the answer (so "Lisbon, not Oslo" counts, "Oslo or
    Lisbon" does not)."""
    found = extract(answer, kind)
    if found is None:
        return False
    if kind == "code":
        return found == expected
    vocabulary = {w.lower() for w in (*_CITIES, *_JOBS, *_PETS)}
    words = re.findall(r"[a-z]+", found)
    first = next((w for w in words if w in vocabulary), None)
    return first == expected.lower()
