"""Constrained decoding with llguidance (guidance-ai/llguidance 1.9.1, also a vLLM backend).

- ``grammar_of(spec) -> str``: the llguidance grammar for a ``GuidedSpec`` (JSON schema, any
  JSON object, regex, choice list, Lark/GBNF grammar). Raises ``GrammarError`` if it does not
  compile; the message names what is wrong (``Unimplemented keys: ["if", "then"]``, a regex
  error with its position, ...). Needs no tokenizer, so the ingress checks a request with it
  before anything reaches a model. Cached (LRU) per spec.
- ``GrammarCompiler(tokenizer, vocab_size, eos_ids).matcher(spec)``: a fresh ``LLMatcher`` for
  one request. The compiled matcher is cached (LRU) per spec and each request gets a
  ``deep_copy`` of it, so a schema is compiled once per process.
- ``GrammarProcessor``: the per-request logits processor. ``apply`` sets every token the grammar
  forbids to ``-inf``; once the grammar is complete (matcher stopped) only EOS is left, so every
  decode loop ends the answer naturally. ``record`` advances the matcher by the chosen token.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import llguidance
import torch

from deployments.engine.sampling.params import GuidedSpec, SamplingError

CACHE_SIZE = 128  # compiled grammars kept per process
_BITS = torch.arange(32, dtype=torch.int32)


class GrammarError(SamplingError):
    """A structured-output spec that does not compile (HTTP 400; the message names the problem)."""


@lru_cache(maxsize=CACHE_SIZE)
def grammar_of(spec: GuidedSpec) -> str:
    """The llguidance grammar (JSON text) for ``spec``; raises GrammarError when it does not compile."""
    grammar = _translate(spec)
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise GrammarError(f"{_what(spec)} cannot be used: {problem.strip()}")
    return grammar


def _translate(spec: GuidedSpec) -> str:
    matcher = llguidance.LLMatcher
    try:
        if spec.kind == "json_object":
            return matcher.grammar_from_json_schema({"type": "object"})
        if spec.kind == "json_schema":
            return matcher.grammar_from_json_schema(spec.spec)
        if spec.kind == "regex":
            return matcher.grammar_from_regex(spec.spec)
        if spec.kind == "choice":
            return llguidance.grammar_from("choice", spec.spec)
        return llguidance.grammar_from("grammar", spec.spec)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise GrammarError(f"{_what(spec)} cannot be used: {exc}") from exc


def _what(spec: GuidedSpec) -> str:
    return {"json_schema": "the JSON schema", "json_object": "json_object", "regex": "the regex",
            "choice": "the choice list", "grammar": "the grammar"}[spec.kind]


def byte_level_json(hf_tokenizer: Any) -> str:
    """The fast tokenizer's JSON as llguidance must read it (what ``llguidance.hf.from_tokenizer``
    sends, plus one repair).

    llguidance learns each token's bytes from the tokenizer's decoder. A byte-level BPE (ByteLevel
    pre-tokenizer, as GPT-2, Llama 3, SmolLM2) converted from GGUF by transformers gets a decoder
    ``Sequence[ByteFallback, Fuse, Replace, ByteLevel]`` that llguidance does not recognise: it then
    takes token 198 for the character "Ċ" instead of the byte newline and "Ġ" for a space, so a
    grammar would allow raw newlines inside JSON strings and refuse real spaces. Such a tokenizer
    decodes exactly with ``ByteLevel`` alone, which is what we hand llguidance.
    """
    backend = copy.copy(hf_tokenizer.backend_tokenizer)
    backend.no_padding()
    backend.no_truncation()
    data = json.loads(backend.to_str())
    pre, decoder = data.get("pre_tokenizer") or {}, data.get("decoder") or {}
    if pre.get("type") == "ByteLevel" and decoder.get("type") == "Sequence":
        if any(d.get("type") == "ByteLevel" for d in decoder.get("decoders", [])):
            data["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                               "use_regex": True}
    return json.dumps(data)


class GrammarCompiler:
    """Per-engine: wraps the tokenizer for llguidance once, compiles and caches matchers."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: set[int]):
        self.vocab_size = vocab_size
        self.tokenizer_vocab = max(vocab_size, len(tokenizer))
        self.eos_ids = sorted(eos_ids)
        self._hf_tokenizer = tokenizer
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._compiled: OrderedDict[GuidedSpec, llguidance.LLMatcher] = OrderedDict()
        self._lock = threading.Lock()
        self.compilations = 0  # how many specs were compiled (the rest were cache hits)

    def _llg_tokenizer(self) -> llguidance.LLTokenizer:
        if self._tokenizer is None:  # ~1 s: build once per engine
            # n_vocab: the tokenizer may list a few more (added) tokens than the model's logits row has
            self._tokenizer = llguidance.LLTokenizer(byte_level_json(self._hf_tokenizer), n_vocab=self.tokenizer_vocab,
                                                     eos_token=self.eos_ids or None)
        return self._tokenizer

    def matcher(self, spec: GuidedSpec) -> llguidance.LLMatcher:
        """A fresh matcher for one request; raises GrammarError if ``spec`` does not compile."""
        grammar = grammar_of(spec)
        with self._lock:
            proto = self._compiled.get(spec)
            if proto is not None:
                self._compiled.move_to_end(spec)
                return proto.deep_copy()
            proto = llguidance.LLMatcher(self._llg_tokenizer(), grammar, log_level=0)
            if proto.is_error():
                raise GrammarError(f"{_what(spec)} cannot be used: {proto.get_error()}")
            self.compilations += 1
            self._compiled[spec] = proto
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
            return proto.deep_copy()


class GrammarProcessor:
    """Masks one row's logits to what the grammar allows next and follows the chosen tokens."""

    def __init__(self, matcher: llguidance.LLMatcher, tokenizer_vocab: int, eos_ids: set[int]):
        self.matcher = matcher
        self.eos = sorted(eos_ids)
        self.bitmask = torch.zeros((tokenizer_vocab + 31) // 32, dtype=torch.int32)

    @property
    def complete(self) -> bool:
        return self.matcher.is_stopped()

    def apply(self, logits: torch.Tensor) -> None:
        if self.matcher.is_error():
            raise SamplingError(f"structured output failed: {self.matcher.get_error()}")
        if self.matcher.is_stopped():
            keep = logits[self.eos].clone() if self.eos else None
            logits.fill_(float("-inf"))
            if keep is not None:  # the grammar is complete: EOS wins over min_tokens
                logits[self.eos] = torch.where(torch.isfinite(keep), keep, torch.zeros_like(keep))
            return
        self.matcher.unsafe_compute_mask_ptr(self.bitmask.data_ptr(), self.bitmask.numel() * 4)
        allowed = ((self.bitmask.unsqueeze(-1) >> _BITS) & 1).flatten()[: logits.shape[-1]].bool()
        logits.masked_fill_(~allowed.to(logits.device), float("-inf"))

    def record(self, token_id: int) -> None:
        if not self.matcher.is_stopped():
            self.matcher.consume_token(token_id)
