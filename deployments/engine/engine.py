"""KVEngine: prefill a context under a press into a CompressedKV, and decode from one.

Contract:
- ``prefill(context, press_spec) -> CompressedKV``: runs the context once under the press,
  exactly as kvpress's ``kv-press-text-generation`` pipeline does (same chat-template split,
  same forward call), and returns the pruned cache. Per-head presses are stored ragged.
- ``generate(ckv, question, sampling)`` yields ``GenerationStep`` objects, one per token, then
  a final step with ``finish_reason``. Positions continue at ``ckv.meta.next_position`` like the
  pipeline. The stored ``ckv`` is never mutated: decoding works on a per-request copy.
- ``prompt_logprobs(ckv, token_ids, top_k)``: each prompt token's log-prob given the tokens before
  it (and the stored context ``ckv``, if any): the ``echo`` + ``logprobs`` loglikelihood measure
  (deployments/engine/scoring.py).
- One model is shared by all requests of a process. kvpress keeps per-head masks on the attention
  modules, so every forward runs under ``self._lock`` with the request's own masks installed;
  concurrent generations interleave token by token. A ``background`` prefill (a recovery no client
  waits for) gives way to live prefills at the next decoder layer (deployments/engine/preemption.py).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from kvpress import BasePress
from transformers import DynamicCache

from deployments.engine.attention_masks import AttentionMasks, masked_key_indices
from deployments.engine.attn_impl import attention_implementation
from deployments.engine.detokenizer import StreamingDetokenizer
from deployments.engine.model_loader import LoadedModel
from deployments.engine.preemption import PrefillPriority
from deployments.engine.presses import ResolvedPress, resolve
from deployments.engine.presses.budget import prefill_press
from deployments.engine.presses.press_stats import load_stats
from deployments.engine.prompt import Message, PromptError, PromptFrame, PromptRenderer
from deployments.engine.sampling import SamplingParams, TokenChoice, TokenSampler
from deployments.engine.sampling.factory import build_sampler
from deployments.engine.sampling.grammar import GrammarCompiler
from deployments.engine.scoring import PromptTokenLogprob, score_hidden
from kvpool.compressed_kv import CompressedKV, KVMeta, layer_from_mask
from kvpool.errors import KVFleetError
from kvpool.press_spec import NO_PRESS, PressSpec

Context = str | list[Message] | list[int]
ProgressCallback = Callable[[str, float], None]


class ContextTooLongError(KVFleetError, ValueError):
    """Context (+ question + max_tokens) exceeds the model's positions (HTTP 413)."""


@dataclass(frozen=True)
class GenerationStep:
    """One generated token (``text`` is the newly decided text), or the final step (token None)."""

    token: TokenChoice | None
    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class KVEngine:
    def __init__(self, loaded: LoadedModel, model_name: str):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.model_name = model_name
        self.renderer = PromptRenderer(self.tokenizer)
        self.device = next(self.model.parameters()).device
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")  # stored caches' dtype too
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 1 << 30))
        self.masks = AttentionMasks(self.model)
        self._lock = threading.RLock()
        self.priority = PrefillPriority(self.masks.layers, self._lock)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        self.grammars = GrammarCompiler(self.tokenizer, self.vocab_size, self.eos_ids)

    # ---------------------------------------------------------------- prefill
    def frame_for(self, context: Context) -> tuple[PromptFrame, list[int]]:
        """Render a context (text, chat messages, or raw token ids) and tokenize it."""
        if isinstance(context, str):
            frame = self.renderer.document_frame(context)
        elif context and all(isinstance(t, int) for t in context):
            return PromptFrame("tokens", ""), list(context)
        else:
            frame = self.renderer.chat_frame(list(context))
        return frame, self.renderer.encode(frame.prefix_text)

    def prefill(self, context: Context, spec: PressSpec = NO_PRESS, progress: ProgressCallback | None = None,
                pool_pressure: float | None = None, background: bool = False) -> CompressedKV:
        """Read ``context`` once under ``spec``'s press; raises PressSpecError, ContextTooLongError.
        ``pool_pressure``: the replica's KV pool use in [0, 1], for ``cache_aware`` presses;
        ``background``: no client waits for it - live prefills go first (preemption.py)."""
        resolved = resolve(spec, pool_pressure)
        frame, token_ids = self.frame_for(context)
        return self.prefill_ids(token_ids, resolved, frame, progress, background)

    def prefill_ids(self, token_ids: list[int], resolved: ResolvedPress, frame: PromptFrame,
                    progress: ProgressCallback | None = None, background: bool = False) -> CompressedKV:
        """``background``: a prefill no client waits for, which gives way to live ones (preemption.py)."""
        if not token_ids:
            raise PromptError("context must not be empty")
        self.check_ids(token_ids, "context")
        if len(token_ids) >= self.max_positions:
            raise ContextTooLongError(f"context has {len(token_ids)} tokens; this model reads at most "
                                      f"{self.max_positions - 1} (leave room for the question)")
        press = prefill_press(resolved, len(token_ids))
        if progress:
            progress("prefill", 0.0)
        ids = torch.tensor([token_ids], device=self.device)
        cache, masks = self.priority.run(lambda: self._prefill_forward(ids, press, resolved.attn_implementation),
                                         background)
        if progress:
            progress("prefill", 1.0)
        layers = tuple(layer_from_mask(cache.layers[i].keys, cache.layers[i].values, masks[i])
                       for i in range(len(cache.layers)))
        rerotated = press is not None and resolved.rerotates
        entries = sum(layer.kept_entries() for layer in layers)
        heads = int(self.model.config.num_key_value_heads)
        meta = KVMeta(
            model_id=self.model_name, press=resolved.spec.model_dump(mode="json"),
            original_tokens=len(token_ids), kept_tokens=entries / (len(layers) * heads),
            next_position=cache.get_seq_length() if rerotated else len(token_ids),
            dtype=str(layers[0].keys.dtype).removeprefix("torch."), num_layers=len(layers),
            num_kv_heads=heads, head_dim=int(layers[0].keys.shape[-1]), query_agnostic=resolved.query_agnostic,
            prompt=frame.to_json(), token_ids=tuple(token_ids),
            press_stats=load_stats(press, layers) if press is not None else {},
        )
        return CompressedKV(layers, meta)

    # ---------------------------------------------------------------- decode
    def new_sampler(self, params: SamplingParams, ckv: CompressedKV, input_ids: list[int]) -> TokenSampler:
        """The one place a request's sampler is built (every decode loop calls this).

        Its prompt - all tokens read before the answer, counted by ``repetition_penalty`` - is the
        stored context (``ckv.meta.token_ids``) followed by the question ``input_ids``.
        Raises SamplingError / GrammarError (HTTP 400)."""
        prompt_ids = list(ckv.meta.token_ids) + list(input_ids)
        return build_sampler(params, prompt_ids, self.device, self.vocab_size, self.eos_ids, self.grammars)

    def question_ids(self, ckv: CompressedKV, question: str | list[Message] | list[int]) -> list[int]:
        """Token ids to feed after ``ckv`` for a question (text, chat messages, or raw ids)."""
        if isinstance(question, list) and question and all(isinstance(t, int) for t in question):
            return list(question)
        frame = PromptFrame.from_json(ckv.meta.prompt)
        return self.renderer.encode(self.renderer.question_text(frame, question))

    def generate(self, ckv: CompressedKV, question: str | list[Message] | list[int],
                 sampling: SamplingParams = SamplingParams(), decode_press: PressSpec | None = None,
                 cancelled: Callable[[], bool] = lambda: False) -> Iterator[GenerationStep]:
        """Stream an answer to ``question`` from the stored cache ``ckv`` (never mutated)."""
        ids = self.question_ids(ckv, question)
        return self.generate_ids(ckv, ids, sampling, decode_press, cancelled)

    def generate_ids(self, ckv: CompressedKV, input_ids: list[int], sampling: SamplingParams = SamplingParams(),
                     decode_press: PressSpec | None = None,
                     cancelled: Callable[[], bool] = lambda: False) -> Iterator[GenerationStep]:
        self.check_request(ckv, input_ids, sampling)
        press = self._decoding_press(ckv, decode_press)
        return self._decode_loop(ckv, input_ids, sampling, press, cancelled)

    def check_request(self, ckv: CompressedKV, input_ids: list[int], sampling: SamplingParams) -> None:
        """Raise PromptError (empty question), ContextTooLongError or KVFleetError (other model, or a
        cache in another dtype: a pool built with ``KVPool(dtype=engine.dtype)`` converts on put)."""
        if not input_ids:
            raise PromptError("the question must not be empty")
        self.check_ids(input_ids, "question")
        start = ckv.meta.next_position
        if start + len(input_ids) + sampling.max_tokens > self.max_positions:
            raise ContextTooLongError(
                f"context ({ckv.meta.original_tokens}) + question ({len(input_ids)}) + max_tokens "
                f"({sampling.max_tokens}) exceeds the model's {self.max_positions} positions")
        if ckv.meta.model_id != self.model_name:
            raise KVFleetError(f"cache was built by model {ckv.meta.model_id!r}, this engine serves {self.model_name!r}")
        if ckv.meta.dtype != self.dtype:
            raise KVFleetError(f"cache is in {ckv.meta.dtype}, this engine's model runs in {self.dtype}; convert it "
                               "first (kvpool.cast_dtype; a replica's pool does so when it stores a cache)")

    def check_ids(self, token_ids: list[int], what: str) -> None:
        """PromptError (400) for an id the model's embedding has no row for: the tokenizer may define
        more tokens than the model was trained with (the embedded GGUF's tokenizer adds 5 fill-in-
        the-middle tokens, e.g. ``<FILL_ME>`` = 49156, above the 49,152 rows), and user text spelling
        one must not reach the forward pass."""
        bad = next((t for t in token_ids if not 0 <= t < self.vocab_size), None)
        if bad is not None:
            name = self.tokenizer.convert_ids_to_tokens(bad) if 0 <= bad < len(self.tokenizer) else None
            raise PromptError(f"the {what} holds token id {bad}" + (f" ({name!r})" if name else "") +
                              f", which this model cannot read (its vocabulary is ids 0..{self.vocab_size - 1})")

    def uses_decoding_press(self, ckv: CompressedKV, override: PressSpec | None = None) -> bool:
        """True if decoding ``ckv`` runs a decoding-time press (it then decodes alone, unbatched)."""
        return self._decoding_press(ckv, override) is not None

    def _decode_loop(self, ckv: CompressedKV, input_ids: list[int], sampling: SamplingParams,
                     press: Any, cancelled: Callable[[], bool]) -> Iterator[GenerationStep]:
        sampler = self.new_sampler(sampling, ckv, input_ids)
        cache, masks = self._working_cache(ckv)
        detok = StreamingDetokenizer(self.tokenizer, sampling.stop, sampling.min_tokens)
        ids = torch.tensor([input_ids], device=self.device)
        positions = torch.arange(ckv.meta.next_position, ckv.meta.next_position + len(input_ids),
                                 device=self.device).unsqueeze(0)
        finish, produced = "length", 0
        ending = sampling.ending_ids(self.eos_ids)
        for step in range(sampling.max_tokens):
            if cancelled():
                finish = "cancelled"
                break
            logits = self._forward(ids, positions, cache, masks, press)
            choice = sampler(logits)
            produced += 1
            text = detok.push(choice.token_id)
            if choice.token_id in ending:
                finish = "stop"
                yield GenerationStep(choice, text, None, len(input_ids), produced)
                break
            yield GenerationStep(choice, text, None, len(input_ids), produced)
            if detok.stopped_by is not None:
                finish = "stop"
                break
            ids = torch.tensor([[choice.token_id]], device=self.device)
            positions = positions[:, -1:] + 1
        yield GenerationStep(None, detok.flush(), finish, len(input_ids), produced)

    def answer(self, ckv: CompressedKV, question: str | list[Message], sampling: SamplingParams = SamplingParams(),
               decode_press: PressSpec | None = None) -> tuple[str, list[int], str]:
        """Convenience: the whole answer as (text, token ids, finish_reason)."""
        text, tokens, finish = [], [], None
        for step in self.generate(ckv, question, sampling, decode_press):
            text.append(step.text)
            if step.token is not None:
                tokens.append(step.token.token_id)
            finish = step.finish_reason or finish
        return "".join(text), tokens, finish or "length"

    # ---------------------------------------------------------------- scoring
    def prompt_logprobs(self, ckv: CompressedKV | None, token_ids: list[int],
                        top_k: int = 0) -> list[PromptTokenLogprob | None]:
        """Log-prob of every token of ``token_ids`` given the tokens before it, read after the
        stored context ``ckv`` (never mutated; None: the prompt alone, uncompressed), with the
        ``top_k`` alternatives per position. ``len(token_ids)`` entries, the first None.
        Raises PromptError (empty) or ContextTooLongError (past the model's positions)."""
        if not token_ids:
            raise PromptError("the prompt must not be empty")
        start = 0 if ckv is None else ckv.meta.next_position
        if start + len(token_ids) > self.max_positions:
            raise ContextTooLongError(f"the prompt ({len(token_ids)} tokens after {start}) exceeds the model's "
                                      f"{self.max_positions} positions")
        with torch.inference_mode():
            hidden, _ = self.read_after(ckv, token_ids)
            return score_hidden(hidden, self.model.get_output_embeddings(), token_ids, top_k)

    def read_after(self, ckv: CompressedKV | None, token_ids: list[int]) -> tuple[torch.Tensor, DynamicCache]:
        """Run ``token_ids`` through the model after the stored context ``ckv`` (a private copy, never
        mutated; None: from position 0, no context): positions continue at ``ckv.meta.next_position``
        and every token attends to the stored (possibly pruned) keys as a question on ``ckv`` does.
        Returns the ``[T, hidden_size]`` final hidden states and the working cache, which now holds
        ``ckv``'s entries followed by the ``T`` new ones. Callers check lengths first."""
        self.check_ids(token_ids, "prompt")
        start = 0 if ckv is None else ckv.meta.next_position
        ids = torch.tensor([token_ids], device=self.device)
        positions = torch.arange(start, start + len(token_ids), device=self.device).unsqueeze(0)
        cache, masks = self._working_cache(ckv) if ckv is not None else (DynamicCache(), self.masks.none())
        with self._lock, torch.inference_mode(), self.masks.installed(masks):
            hidden = self.model.model(input_ids=ids, past_key_values=cache, position_ids=positions)[0][0]
        return hidden, cache

    # ---------------------------------------------------------------- internals
    def decode_layers(self, ckv: CompressedKV, spare: int = 0) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple | None]]:
        """``ckv`` as decoding reads it, on the model's device: per-layer ``[1, H, T + spare, D]`` keys and
        values (per-head layouts padded to one T; with ``spare`` 0, views of ``ckv`` where nothing is padded,
        never to be written; else fresh buffers) and kvpress masked key indices per layer (``masked_key_indices``).
        Raises CacheLayoutError if the cache is still coded (decode it with kvpool.codecs)."""
        if ckv.device != self.device:
            ckv = ckv.to(self.device)
        pairs, pads = ckv.padded_layers(spare)
        return pairs, masked_key_indices(pads)

    def _working_cache(self, ckv: CompressedKV) -> tuple[DynamicCache, list[tuple | None]]:
        """A private DynamicCache (copy) of ``ckv`` on the model device + per-layer masked indices."""
        pairs, masks = self.decode_layers(ckv)
        cache = DynamicCache()
        for i, (keys, values) in enumerate(pairs):
            cache.update(keys, values, i)  # DynamicLayer concatenates onto an empty tensor: a copy
        return cache, masks

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, cache: DynamicCache,
                 masks: list[tuple | None], press: Any) -> torch.Tensor:
        with self._lock, torch.inference_mode(), self.masks.installed(masks), self._step_hooks(press):
            out = self.model(input_ids=ids, past_key_values=cache, position_ids=positions, logits_to_keep=1)
        return out.logits[0, -1].float()  # sampling, logprobs and grammar masks work in float32

    def _prefill_forward(self, ids: torch.Tensor, press: Any, attn: str | None) -> tuple[DynamicCache, list]:
        """One prefill forward under ``press`` (called under the lock); on any exception the model is left as
        it was found (masks cleared, attention implementation restored, the press's hooks removed)."""
        cache = DynamicCache()
        with torch.inference_mode(), attention_implementation(self.model, attn), self.masks.cleared_on_error():
            with press(self.model) if press is not None else contextlib.nullcontext():
                self.model.model(input_ids=ids, past_key_values=cache)
            return cache, self.masks.take(cache)

    def _decoding_press(self, ckv: CompressedKV, override: PressSpec | None) -> Any:
        spec = override or PressSpec.model_validate(ckv.meta.press)
        resolved = resolve(spec)
        if resolved.phase == "prefill":
            return None
        if ckv.is_ragged:
            raise KVFleetError("a decoding press cannot run on a per-head (ragged) cache; "
                               "use a dense prefill press with it")
        return resolved.press

    def _step_hooks(self, press: Any) -> contextlib.AbstractContextManager:
        """Register a decoding press's hooks for one forward step.

        ``BasePress.__call__`` adds and removes the hooks; the press's own ``__call__`` would also
        reset its decoding buffers on exit, which must survive across the steps of a generation
        (other requests' steps run between ours, so hooks cannot stay registered).
        """
        if press is None:
            return contextlib.nullcontext()
        return BasePress.__call__(press, self.model)
