"""Structured outputs on the real embedded model: llguidance masks, forced EOS, compile cache."""

import json
import re

import jsonschema
import pytest

from deployments.engine.sampling import GuidedSpec, SamplingParams
from deployments.engine.sampling.grammar import GrammarError, grammar_of
from kvpool import PressSpec
from tests.conftest import document

FACTS_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["code", "city", "day"],
                "properties": {"code": {"type": "string", "maxLength": 12}, "city": {"type": "string", "maxLength": 24},
                               "day": {"type": "string", "enum": ["Monday", "Tuesday", "Wednesday", "Thursday",
                                                                  "Friday", "Saturday", "Sunday"]}}}


@pytest.fixture(scope="module")
def facts_cache(engine):
    return engine.prefill(document(6), PressSpec())


def json_schema(schema: dict) -> GuidedSpec:
    return GuidedSpec(kind="json_schema", spec=json.dumps(schema))


@pytest.mark.parametrize("schema, named", [
    ({"type": "object", "if": {"type": "object"}, "then": {}}, '"if"'),
    ({"type": "object", "properties": {"a": {"$dynamicRef": "#x"}}}, "$dynamicRef"),
    ({"type": "strin"}, "strin"),
])
def test_an_unsupported_schema_feature_is_named(schema, named):
    with pytest.raises(GrammarError, match=re.escape(named)):
        grammar_of(json_schema(schema))


def test_a_bad_regex_or_grammar_does_not_compile():
    with pytest.raises(GrammarError, match="unclosed character class"):
        grammar_of(GuidedSpec(kind="regex", spec="[a-z"))
    with pytest.raises(GrammarError, match="unknown name"):
        grammar_of(GuidedSpec(kind="grammar", spec='start: "a" | foo'))


def test_json_schema_answer_validates_and_ends_with_eos(engine, facts_cache):
    params = SamplingParams(max_tokens=80, guided=json_schema(FACTS_SCHEMA))
    text, tokens, finish = engine.answer(facts_cache, "Give the vault code, Alice's birth city and the meeting day.",
                                         params)
    jsonschema.validate(json.loads(text), FACTS_SCHEMA)
    assert finish == "stop" and tokens[-1] in engine.eos_ids  # the complete grammar forced EOS


def test_compiled_grammar_is_cached_per_spec(engine, facts_cache):
    spec = GuidedSpec(kind="choice", spec=json.dumps(["Lisbon", "Paris", "Rome"]))
    before = engine.grammars.compilations
    answers = [engine.answer(facts_cache, q, SamplingParams(max_tokens=8, guided=spec))[0]
               for q in ("Where was Alice born?", "Which city?")]
    assert all(a in ("Lisbon", "Paris", "Rome") for a in answers)
    assert engine.grammars.compilations == before + 1


def test_regex_constrains_every_token_even_when_sampling(engine, facts_cache):
    params = SamplingParams(max_tokens=12, temperature=1.5, seed=3, guided=GuidedSpec(kind="regex", spec="[0-9]{4}"))
    text, _, finish = engine.answer(facts_cache, "What is the secret code of the vault?", params)
    assert re.fullmatch("[0-9]{4}", text) and finish == "stop"


def test_grammar_completion_wins_over_min_tokens(engine, facts_cache):
    params = SamplingParams(max_tokens=12, min_tokens=8, guided=GuidedSpec(kind="choice", spec='["yes", "no"]'))
    text, tokens, finish = engine.answer(facts_cache, "Is the meeting on Thursday?", params)
    assert text in ("yes", "no") and finish == "stop" and len(tokens) < 8


def test_llguidance_sees_the_real_bytes_of_byte_level_tokens(engine):
    """Regression: the GGUF-converted SmolLM2 tokenizer's decoder made llguidance read token 198 as
    "Ċ" (not a newline) and "Ġ" for a space: raw newlines passed inside JSON strings, spaces did not."""
    tokenizer = engine.grammars._llg_tokenizer()
    ids = engine.tokenizer.encode("a\n Lisbon", add_special_tokens=False)
    assert [tokenizer.decode_bytes([i]) for i in ids] == [b"a", b"\n", b" Lisbon"]

    def accepts(text: str) -> bool:
        matcher = engine.grammars.matcher(GuidedSpec(kind="json_object"))
        return all(matcher.consume_token(t) for t in engine.tokenizer.encode(text, add_special_tokens=False)) \
            and matcher.is_accepting()

    assert accepts('{"a": "x y"}') and accepts('{\n  "a": 1\n}')
    assert not accepts('{"a\nb": 1}')  # a raw control character is not JSON
