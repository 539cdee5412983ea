"""The suite by name: RULER-style tasks at several lengths, and the existing question sets.

``build_suite(tasks, seeds, lengths, count)`` -> one SuiteDocument per (task, length, seed), the
same for the same arguments and tokenizer. ``question_sets(seeds, target_tokens, count)`` wraps the
project's two question sets (benchmarks/quality_sets: ``document`` = needle + facts, ``chat``) as
SuiteDocuments, so one run scores both; ``score_probe`` scores either kind.

Splits: a document's ``seed`` decides its half - even seeds choose the default, odd seeds are
held back to report it (``split_of``).
"""

from __future__ import annotations

from typing import Callable

from benchmarks.quality_sets import QUESTION_SETS, build_documents
from benchmarks.quality_tasks import exact_match
from benchmarks.ruler.aggregation import common_words
from benchmarks.ruler.haystack import TokenCounter
from benchmarks.ruler.niah import niah_multikey, niah_multivalue, niah_single
from benchmarks.ruler.probes import Probe, SuiteDocument, score
from benchmarks.ruler.variable_tracking import variable_tracking

TASKS: dict[str, Callable[[int, int, TokenCounter], SuiteDocument]] = {
    "niah_single": niah_single, "niah_multikey": niah_multikey, "niah_multivalue": niah_multivalue,
    "variable_tracking": variable_tracking, "common_words": common_words}
LENGTHS = (1024, 2048, 4096)
SPLITS = ("choose", "report")


def split_of(seed: int) -> str:
    """``choose`` for even seeds, ``report`` (held back) for odd ones."""
    return SPLITS[seed % 2]


def build_suite(tasks: list[str], seeds: list[int], lengths: list[int], count: TokenCounter) -> list[SuiteDocument]:
    """One document per (task, length, seed); ValueError naming the valid tasks on an unknown one."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown RULER task(s) {unknown}; valid: {sorted(TASKS)}")
    return [TASKS[task](seed, length, count) for task in tasks for length in lengths for seed in seeds]


def question_sets(seeds: list[int], target_tokens: int, count: TokenCounter) -> list[SuiteDocument]:
    """The ``document`` (needle + facts) and ``chat`` question sets as SuiteDocuments."""
    docs = []
    for family, tasks in QUESTION_SETS.items():
        for task in tasks:
            for seed, doc in zip(seeds, build_documents([task], seeds, target_tokens, count)):
                probes = tuple(Probe(i.question, (i.answer,), i.kind, i.depth) for i in doc.items)
                docs.append(SuiteDocument(doc.doc_id, family, task, seed, target_tokens, doc.context, probes))
    return docs


def score_probe(answer: str, probe: Probe, family: str) -> bool:
    """RULER string match for ``ruler`` documents, the question sets' exact match otherwise."""
    if family == "ruler":
        return score(answer, probe)
    return exact_match(answer, probe.answers[0], probe.kind)
