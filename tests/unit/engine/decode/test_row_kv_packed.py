"""RowKV (a row's own KV buffers) and PackedStep (one packed forward over rows of any length)."""

from __future__ import annotations

import pytest
import torch

from deployments.engine.decode import packed
from deployments.engine.decode.row_kv import RowKV
from deployments.engine.attention_masks import masked_key_indices
from kvpool.press_spec import NO_PRESS, PressSpec
from tests.conftest import document


def row(n: int, layers: int = 2, heads: int = 3, dim: int = 4, spare: int = 2) -> RowKV:
    keys = [torch.randn(1, heads, n, dim) for _ in range(layers)]
    values = [torch.randn(1, heads, n, dim) for _ in range(layers)]
    return RowKV.from_layers(keys, values, [None] * layers, spare=spare)


def row_of(engine, ckv, spare: int) -> RowKV:
    """A row from a stored cache, as the batch runner lays it out (one copy, padded into its buffers)."""
    pairs, masked = engine.decode_layers(ckv, spare=spare)
    return RowKV.adopt([k for k, _ in pairs], [v for _, v in pairs], masked, spare=spare)


def test_from_layers_copies_the_cache_with_room_to_spare():
    keys, values = [torch.randn(1, 3, 5, 4)], [torch.randn(1, 3, 5, 4)]
    kv = RowKV.from_layers(keys, values, [None], spare=7)
    assert kv.length == 5 and kv.capacity == 12
    k, v = kv.view(0, 0)
    assert torch.equal(k, keys[0]) and torch.equal(v, values[0])
    keys[0].zero_()
    assert not torch.equal(kv.view(0, 0)[0], keys[0])  # a copy: the stored cache is never touched


def test_adopted_row_holds_the_padded_cache_in_its_own_buffers(engine):
    ckv = engine.prefill(document(8), PressSpec(name="adakv", compression_ratio=0.5, presses=[PressSpec(name="knorm")]))
    assert ckv.is_ragged
    pairs, masked = engine.decode_layers(ckv)  # views / padded copies, no room
    adopted, adopted_masked = engine.decode_layers(ckv, spare=5)
    kv = RowKV.adopt([k for k, _ in adopted], [v for _, v in adopted], adopted_masked, spare=5)
    n = pairs[0][0].shape[2]
    assert kv.length == n and kv.capacity == n + 5
    for layer, (keys, values) in enumerate(pairs):
        assert torch.equal(kv.keys[layer][:, :, :n], keys) and torch.equal(kv.values[layer][:, :, :n], values)
        assert kv.keys[layer].data_ptr() == adopted[layer][0].data_ptr()  # adopted, not copied again
        assert (masked[layer] is None) == (kv.masked[layer] is None)
        if masked[layer] is not None:
            assert all(torch.equal(a, b) for a, b in zip(masked[layer], kv.masked[layer]))
    with pytest.raises(ValueError, match="width"):
        RowKV.adopt([k for k, _ in pairs], [v for _, v in pairs], masked, spare=n)


def test_head_padding_becomes_kvpress_masked_key_indices():
    pad = torch.zeros(3, 5, dtype=torch.bool)
    pad[1, 3:] = True
    batch, heads, seq = masked_key_indices([pad, pad])[0]
    assert batch.tolist() == [0, 0] and heads.tolist() == [1, 1] and seq.tolist() == [3, 4]
    assert masked_key_indices([torch.zeros(3, 5, dtype=torch.bool), None]) == [None, None]


def test_write_view_commit_and_growth_keep_the_row_intact():
    kv = row(4, spare=1)
    before = kv.view(1, 0)[0].clone()
    new_k, new_v = torch.randn(1, 3, 3, 4), torch.randn(1, 3, 3, 4)
    for layer in range(2):
        kv.write(layer, new_k, new_v)  # 4 + 3 > capacity 5: this row's buffers double
    assert kv.length == 4  # not counted until commit
    k, v = kv.view(1, 3)
    assert torch.equal(k[:, :, :4], before) and torch.equal(k[:, :, 4:], new_k) and torch.equal(v[:, :, 4:], new_v)
    kv.commit(3)
    assert kv.length == 7 and kv.capacity >= 10


def test_layers_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        RowKV.from_layers([torch.randn(1, 3, 5, 4), torch.randn(1, 3, 6, 4)],
                          [torch.randn(1, 3, 5, 4), torch.randn(1, 3, 6, 4)], [None, None], spare=1)


def test_packed_step_writes_each_rows_slice_and_attends_each_row_to_its_own_columns():
    a, b = row(3), row(6)
    step = packed.PackedStep([a, b], [1, 4])
    assert step.spans == [(0, 1), (1, 5)] and step.tokens == 5
    new_k = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 3, 5, 4)
    calls = []

    def attention(module, query, key, value, mask, dropout=0.0, **kwargs):
        calls.append((module.layer_idx, query.shape[2], key.shape[2], None if mask is None else mask.shape,
                      module.masked_key_indices))
        return query.transpose(1, 2), None

    for layer in range(2):
        step.update(new_k, -new_k, layer)
        module = type("Attention", (), {"layer_idx": layer, "masked_key_indices": "outer"})()
        out, _ = step.attend(attention, module, torch.randn(1, 6, 5, 4), 0.0, {})
        assert out.shape == (1, 5, 6, 4) and module.masked_key_indices == "outer"  # restored after
    # row a: 1 query over its 3 + 1 columns, no mask; row b: 4 queries over 6 + 4, causal mask
    assert calls == [(0, 1, 4, None, None), (0, 4, 10, (1, 1, 4, 10), None),
                     (1, 1, 4, None, None), (1, 4, 10, (1, 1, 4, 10), None)]
    step.commit()
    assert (a.length, b.length) == (4, 10)
    assert a.view(0, 0)[0][0, 0, 3:, 0].tolist() == [0.0]
    assert b.view(1, 0)[0][0, 0, 6:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert b.view(1, 0)[1][0, 0, 6:, 0].tolist() == [-1.0, -2.0, -3.0, -4.0]


def test_packed_step_needs_a_token_per_row():
    with pytest.raises(ValueError):
        packed.PackedStep([row(3)], [0])
    with pytest.raises(ValueError):
        packed.PackedStep([], [])


def test_extend_mask_is_causal_after_the_rows_cache():
    mask = packed.PackedStep([row(3)], [2])._causal_mask(3, 2, torch.device("cpu"))
    assert mask.shape == (1, 1, 2, 5)
    assert mask[0, 0].tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_packed_forward_gives_the_one_request_paths_logits(engine):
    """Rows of different lengths and layouts in one packed forward: a decoding uncompressed row,
    an extend over a kvzip (per-head ragged) cache and an extend over a knorm cache. Each row's
    logits are the one-request path's (the same attention calls; linear layers over N tokens)."""
    caches = [engine.prefill(document(3), NO_PRESS),
              engine.prefill(document(5), PressSpec(name="kvzip", compression_ratio=0.5)),
              engine.prefill(document(4), PressSpec(name="knorm", compression_ratio=0.5))]
    feeds = [[11], engine.question_ids(caches[1], "Where was Alice born?"), engine.question_ids(caches[2], "Hi")]
    expected = []
    for ckv, ids in zip(caches, feeds):
        cache, masks = engine._working_cache(ckv)
        positions = torch.arange(ckv.meta.next_position, ckv.meta.next_position + len(ids)).unsqueeze(0)
        expected.append(engine._forward(torch.tensor([ids]), positions, cache, masks, None))
    packed.install()
    rows = []
    for ckv, ids in zip(caches, feeds):
        rows.append(row_of(engine, ckv, spare=len(ids)))
    step = packed.PackedStep(rows, [len(t) for t in feeds])
    ids = torch.tensor([[t for f in feeds for t in f]])
    positions = torch.tensor([[p for ckv, f in zip(caches, feeds)
                               for p in range(ckv.meta.next_position, ckv.meta.next_position + len(f))]])
    ends = torch.tensor([len(f) for f in feeds]).cumsum(0) - 1
    with torch.inference_mode():
        out = engine.model(input_ids=ids, past_key_values=step, position_ids=positions,
                           cache_position=torch.arange(step.tokens), attention_mask=packed.packed_mask(ids.device),
                           logits_to_keep=ends, kvfleet_packed=step)
    step.commit()
    for got, exp in zip(out.logits[0], expected):
        torch.testing.assert_close(got, exp, rtol=0, atol=2e-4)
        assert int(got.argmax()) == int(exp.argmax())
    assert [r.length for r in rows] == [max(lay.max_head_length() for lay in c.layers) + len(f) for c, f in zip(caches, feeds)]


def packed_logits(engine, kv: RowKV, ids: list[int], position: int, step: packed.PackedStep | None = None):
    step = step if step is not None else packed.PackedStep([kv], [len(ids)])
    with torch.inference_mode():
        out = engine.model(input_ids=torch.tensor([ids]), past_key_values=step,
                           position_ids=torch.arange(position, position + len(ids)).unsqueeze(0),
                           cache_position=torch.arange(len(ids)), attention_mask=packed.packed_mask(torch.device("cpu")),
                           logits_to_keep=1, kvfleet_packed=step)
    step.commit()
    return out.logits[0, -1]


def test_a_forward_failing_midway_changes_no_row(engine):
    """Layers 0-2 write their new columns, layer 3 raises: the row's length is unchanged, and the
    same tokens fed again give the one-request path's logits (the stale columns are overwritten)."""
    ckv = engine.prefill(document(2), NO_PRESS)
    ids = engine.question_ids(ckv, "Where was Alice born?")
    cache, masks = engine._working_cache(ckv)
    positions = torch.arange(ckv.meta.next_position, ckv.meta.next_position + len(ids)).unsqueeze(0)
    expected = engine._forward(torch.tensor([ids]), positions, cache, masks, None)
    kv = row_of(engine, ckv, spare=len(ids))
    packed.install()
    failing = packed.PackedStep([kv], [len(ids)])
    attend = failing.attend

    def attend_until_layer_3(func, module, query, dropout, kwargs):
        if module.layer_idx == 3:
            raise RuntimeError("injected failure in layer 3")
        return attend(func, module, query, dropout, kwargs)

    failing.attend = attend_until_layer_3
    with pytest.raises(RuntimeError, match="layer 3"):
        packed_logits(engine, kv, ids, ckv.meta.next_position, failing)
    assert kv.length == max(lay.max_head_length() for lay in ckv.layers)
    torch.testing.assert_close(packed_logits(engine, kv, ids, ckv.meta.next_position), expected, rtol=0, atol=2e-4)


def test_our_wrapper_sits_outside_kvpress_patch():
    """kvpress's attention patch (fake keys at ``module.masked_key_indices``) must run inside the
    packed wrapper, per row: a plain call through the registry still writes kvpress's fake keys."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    packed.install()
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
    assert sdpa.kvfleet_inner.__module__ == "kvpress.attention_patch"
    module = type("Attention", (), {"layer_idx": 0, "num_key_value_groups": 3, "is_causal": True})()
    module.masked_key_indices = (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    key = torch.randn(1, 2, 5, 4)
    before = key.clone()
    sdpa(module, torch.randn(1, 6, 1, 4), key, torch.randn(1, 2, 5, 4), None)
    changed = (key != before).any(dim=-1)
    assert changed[0, 1, 2] and int(changed.sum()) == 1


def test_old_padded_layout_keys_are_read_or_dropped_with_a_warning(caplog):
    from deployments.engine.decode import BatchConfig

    config = BatchConfig.model_validate({"max_padded_tokens": 5000, "row_padding": "masked_keys"})
    assert config.max_kv_tokens == 5000
    assert "deprecated" in caplog.text
    with pytest.raises(ValueError, match="only max_kv_tokens"):
        BatchConfig.model_validate({"max_padded_tokens": 5000, "max_kv_tokens": 10})
    with pytest.raises(ValueError):
        BatchConfig.model_validate({"max_kv_token": 10})  # a typo is still refused


def test_models_the_packed_path_cannot_serve_are_named():
    from transformers import LlamaConfig, MistralConfig

    llama = LlamaConfig()
    llama._attn_implementation = "sdpa"
    assert packed.unsupported_reason(llama) is None
    for other in ("eager", "flash_attention_2", "flex_attention", "paged|sdpa"):
        llama._attn_implementation = other
        assert "sdpa only" in packed.unsupported_reason(llama)
    mistral = MistralConfig(sliding_window=4096)
    mistral._attn_implementation = "sdpa"
    assert "sliding-window" in packed.unsupported_reason(mistral)


def test_a_layer_attended_outside_the_packed_path_fails_the_step(engine):
    """An attention function that bypasses the registry (eager) would attend over the packed
    tokens alone: the step raises instead of returning such logits, and no row changes."""
    ckv = engine.prefill(document(2), NO_PRESS)
    kv = row_of(engine, ckv, spare=4)
    packed.install()
    step = packed.PackedStep([kv], [1])
    current = engine.model.config._attn_implementation
    engine.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            engine.model(input_ids=torch.tensor([[11]]), past_key_values=step,
                         position_ids=torch.tensor([[ckv.meta.next_position]]), cache_position=torch.arange(1),
                         attention_mask=None, kvfleet_packed=step)
    finally:
        engine.model.set_attn_implementation(current)
    with pytest.raises(RuntimeError, match="not attended per row"):
        step.commit()
    assert kv.length == max(lay.max_head_length() for lay in ckv.layers)
