"""The quality benchmarks' question sets by name: prose documents (quality_tasks) and a conversation
(quality_chat). The registry sits above both, so neither imports the other back."""

from __future__ import annotations

from benchmarks.quality_chat import chat_document
from benchmarks.quality_tasks import QADocument, TokenCounter, facts_document, needle_document

_TASKS = {"needle": needle_document, "facts": facts_document, "chat": chat_document}
QUESTION_SETS = {"document": ("needle", "facts"), "chat": ("chat",)}
"""The two question sets the default press must do well on: facts planted in a prose document,
and facts told in a conversation (see quality_chat)."""


def build_documents(tasks: list[str], seeds: list[int], target_tokens: int, count: TokenCounter) -> list[QADocument]:
    """One document per (task, seed); raises ValueError naming the valid tasks on an unknown one."""
    unknown = [t for t in tasks if t not in _TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; valid: {sorted(_TASKS)}")
    return [_TASKS[task](seed, target_tokens, count) for task in tasks for seed in seeds]
