"""min_tokens holds off stop strings (vLLM semantics) in the streaming detokenizer."""

from deployments.engine.detokenizer import StreamingDetokenizer


def test_stop_strings_only_count_after_min_tokens(engine):
    ids = engine.tokenizer.encode("One. Two. Three.", add_special_tokens=False)
    plain = StreamingDetokenizer(engine.tokenizer, (".",))
    held = StreamingDetokenizer(engine.tokenizer, (".",), min_tokens=3)
    plain_text = "".join(plain.push(t) for t in ids)
    held_text = ""
    for t in ids:
        held_text += held.push(t)
        if held.stopped_by:
            break
    assert plain_text == "One" and plain.stopped_by == "."
    assert held_text.startswith("One.") and held.stopped_by == "."
