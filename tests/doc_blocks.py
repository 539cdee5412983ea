"""Extract the fenced code blocks of README.md and docs/*.md so a test can run each as written.

Conventions (docs/doc-tests.md):

- Every block has a language tag. ``bash``/``sh``/``shell`` run with bash, ``python`` with this
  interpreter; ``json`` must parse (one document, or one per line); ``yaml`` must parse; ``text``
  and ``console`` are sample output and are not run.
- ``<!-- doc-test: skip REASON -->`` on the line right above a block skips it with REASON (a block
  that needs another machine: kubectl, docker, a GPU; or one that never ends, like ``serve run``).
- Blocks run against a live app: ``127.0.0.1:8000`` / ``localhost:8000`` become its address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}
PARSED = {"json", "yaml"}
NOT_CODE = {"text", "console"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_SKIP = re.compile(r"^\s*<!--\s*doc-test:\s*skip\s+(?P<reason>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: str      # relative to the repository root
    line: int      # 1-based line of the opening fence
    lang: str      # "" when untagged
    code: str
    skip: str | None  # the reason, when marked to skip

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.lang or 'untagged'}"


def blocks_in(text: str, path: str) -> list[Block]:
    """Every fenced block of one Markdown text, in order (nested fences of another length kept as code)."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.group("fence"), match.group("info").strip().split(" ")[0].lower()
        skip = _SKIP.match(lines[i - 1]) if i > 0 else None
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        out.append(Block(path, i + 1, lang, "\n".join(lines[i + 1:end]) + "\n",
                         skip.group("reason") if skip else None))
        i = end + 1
    return out


def doc_files(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def all_blocks(repo: Path = REPO) -> list[Block]:
    blocks: list[Block] = []
    for path in doc_files(repo):
        blocks += blocks_in(path.read_text(encoding="utf-8"), str(path.relative_to(repo)))
    return blocks


def pointed_at(code: str, host_port: str) -> str:
    """``code`` with the documented local address replaced by ``host_port`` (e.g. 127.0.0.1:8317)."""
    return re.sub(r"(127\.0\.0\.1|localhost):8000\b", host_port, code)
