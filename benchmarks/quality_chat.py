"""The second question set: facts told in a conversation, loaded as chat messages.

Built differently from ``quality_tasks`` (facts planted in one prose document behind a
passkey preamble): here the context is a list of chat messages, the way a chat application loads
a message log into a session. The user sends a series of messages about their week (two bland
filler sentences each) and in some says a fact to remember - codes ("the access code for the
north door is 4821") and word-valued facts about a fictional country, mixed in one conversation.
There is no preamble; the facts are first-person statements between ordinary messages, so the
rendered prompt (chat template, role markers every ~25 tokens) differs from the document set,
and so do the tokens that presses score.

Calibration (embedded SmolLM2-135M, uncompressed, 512 tokens): with an assistant reply
("Noted.") after every message the model answers every question "Noted" (it copies the reply
pattern); with user messages only it answers 9 of 10.

``chat_document(seed, target_tokens, count)`` -> QADocument with ``context`` a list of
``{"role", "content"}`` messages of about ``target_tokens`` tokens (content tokens, counted with
``count``; the chat template adds ~5 tokens per turn), ``facts`` questions (scored with
quality_tasks.exact_match), depths by turn index. Same seed and tokenizer -> same conversation.
"""

from __future__ import annotations

import random

from benchmarks.quality_tasks import COUNTRIES, FACT_SLOTS, NEEDLE_KEYS, QADocument, QAItem, TokenCounter, filler_sentence

OPENING = "Hi! I want to tell you about my week, and a few things I need you to remember."
_TURN_OVERHEAD_TOKENS = 5  # role markers the chat template adds per message


def _facts(rng: random.Random, facts: int) -> list[tuple[str, QAItem]]:
    """(statement, item without depth) pairs: about half codes, half country facts."""
    codes = facts // 2
    keys = rng.sample(NEEDLE_KEYS, codes)
    values = [str(v) for v in rng.sample(range(1000, 10000), codes)]
    out = [(f"Please remember this: {fact[0].lower()}{fact[1:].format(v=v)}", QAItem(question, v, "code", 0.0))
           for (fact, question), v in zip(keys, values)]
    country = rng.choice(COUNTRIES)
    for slot in rng.sample(sorted(FACT_SLOTS), facts - codes):
        sentence, question, options = FACT_SLOTS[slot]
        value = rng.choice(options)
        out.append((f"Also, I learned that {sentence.format(c=country, v=value)[0].lower()}"
                    f"{sentence.format(c=country, v=value)[1:]}", QAItem(question.format(c=country), value, slot, 0.0)))
    rng.shuffle(out)
    return out


def chat_document(seed: int, target_tokens: int, count: TokenCounter, facts: int = 5) -> QADocument:
    """A conversation of about ``target_tokens`` tokens with ``facts`` facts told at spread-out turns."""
    rng = random.Random(f"chat-{seed}")
    told = _facts(rng, facts)
    per_turn = count(filler_sentence(rng) + " " + filler_sentence(rng)) + _TURN_OVERHEAD_TOKENS
    fixed = count(OPENING) + sum(count(s) + _TURN_OVERHEAD_TOKENS for s, _ in told)
    turns = max(facts + 1, round((target_tokens - fixed) / per_turn))
    slots = [round((i + 0.5) * turns / facts) for i in range(facts)]
    messages = [{"role": "user", "content": OPENING}]
    items: list[QAItem] = []
    for turn in range(turns):
        for (statement, item), slot in zip(told, slots):
            if slot == turn:
                items.append(QAItem(item.question, item.answer, item.kind, round(turn / turns, 3)))
                messages.append({"role": "user", "content": statement})
        filler = f"{filler_sentence(rng)} {filler_sentence(rng)}"
        messages.append({"role": "user", "content": filler})
    return QADocument(f"chat-{target_tokens}-{seed}", "chat", messages, tuple(items), target_tokens)
