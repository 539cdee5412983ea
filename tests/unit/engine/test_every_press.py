"""Every press in the catalog runs on the embedded model, in float32 and in bfloat16: prefill, store in
a KVPool, answer, bytes.

One spec per catalog name (the table must cover the whole catalog, so a press added without a
test fails here). Presses that need a trained artifact are run with a LOCAL artifact written by
the test (random weights of the right shapes: this checks the local loading path and that nothing
is downloaded - HF_HUB_OFFLINE is set - not the artifact's quality), and are 422s without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deployments.engine.presses import CATALOG, describe_presses, install_press_policy, resolve
from deployments.engine.sampling import SamplingParams
from kvpool import PressSpec
from kvpool.config import KVPoolConfig
from kvpool.errors import PressSpecError
from kvpool.handles import SessionId
from kvpool.pool import KVPool
from tests.conftest import DTYPES, document

HALF = 0.5
# name -> (spec, expected stored bytes as a fraction of the uncompressed cache: exact (tolerance
# 0.03), or "<" for "strictly fewer bytes" when the kept share follows from a threshold)
SPECS: dict[str, tuple[dict, float | str]] = {
    "knorm": ({"name": "knorm", "compression_ratio": HALF}, HALF),
    "streaming_llm": ({"name": "streaming_llm", "compression_ratio": HALF}, HALF),
    "random": ({"name": "random", "compression_ratio": HALF, "seed": 0}, HALF),
    "keydiff": ({"name": "keydiff", "compression_ratio": HALF}, HALF),
    "lagkv": ({"name": "lagkv", "compression_ratio": HALF, "lag_size": 16}, "<"),
    "expected_attention": ({"name": "expected_attention", "compression_ratio": HALF}, HALF),
    "cur": ({"name": "cur", "compression_ratio": HALF}, HALF),
    "leverage": ({"name": "leverage", "compression_ratio": HALF}, HALF),
    "compactor": ({"name": "compactor", "compression_ratio": HALF}, HALF),
    "kvzip": ({"name": "kvzip", "compression_ratio": HALF}, HALF),
    "snapkv": ({"name": "snapkv", "compression_ratio": HALF}, HALF),
    "tova": ({"name": "tova", "compression_ratio": HALF}, HALF),
    "observed_attention": ({"name": "observed_attention", "compression_ratio": HALF}, HALF),
    "critical_kv": ({"name": "critical_kv", "compression_ratio": HALF, "presses": [{"name": "snapkv"}]}, HALF),
    "adakv": ({"name": "adakv", "compression_ratio": HALF, "presses": [{"name": "snapkv"}]}, HALF),
    "critical_adakv": ({"name": "critical_adakv", "compression_ratio": HALF, "presses": [{"name": "snapkv"}]}, HALF),
    "block": ({"name": "block", "compression_ratio": HALF, "block_size": 32, "presses": [{"name": "knorm"}]}, HALF),
    "chunk": ({"name": "chunk", "compression_ratio": HALF, "chunk_length": 32, "presses": [{"name": "knorm"}]}, "<"),
    "chunkkv": ({"name": "chunkkv", "compression_ratio": HALF, "presses": [{"name": "snapkv"}]}, "<"),
    "key_rerotation": ({"name": "key_rerotation", "compression_ratio": HALF, "presses": [{"name": "knorm"}]}, HALF),
    "composed": ({"name": "composed", "presses": [{"name": "knorm", "compression_ratio": 0.3},
                                                  {"name": "streaming_llm", "compression_ratio": 0.3}]}, 0.49),
    "per_layer": ({"name": "per_layer", "compression_ratios": [HALF] * 30, "presses": [{"name": "knorm"}]}, HALF),
    "decoding": ({"name": "decoding", "compression_interval": 4, "target_size": 64,
                  "presses": [{"name": "knorm"}]}, 1.0),
    "prefill_decoding": ({"name": "prefill_decoding", "presses": [
        {"name": "knorm", "compression_ratio": HALF},
        {"name": "decoding", "compression_interval": 4, "target_size": 64, "presses": [{"name": "knorm"}]}]}, HALF),
    "pyramidkv": ({"name": "pyramidkv", "compression_ratio": HALF, "window_size": 8}, "<"),
    "simlayerkv": ({"name": "simlayerkv", "lazy_threshold": 0.5, "n_recent": 16}, "<"),
    "think": ({"name": "think", "key_channel_compression_ratio": HALF}, 1.0),
    "finch": ({"name": "finch", "compression_ratio": HALF, "window_tokens": 16}, HALF),
    "kvgrad": ({"name": "kvgrad", "compression_ratio": HALF}, HALF),
    "non_causal_attn": ({"name": "non_causal_attn", "compression_ratio": HALF, "chunk_size": 32}, HALF),
    "kvcompose": ({"name": "kvcompose", "compression_ratio": HALF}, "<"),
    "cap": ({"name": "cap", "compression_ratio": HALF}, HALF),
    "merging": ({"name": "merging", "compression_ratio": HALF, "presses": [{"name": "knorm"}]}, HALF),
    "entropy_gated_chunkkv": ({"name": "entropy_gated_chunkkv", "compression_ratio": HALF,
                               "presses": [{"name": "snapkv"}]}, "<"),
    "dms": ({"name": "dms", "threshold": 0.5, "sliding_window_size": 16, "presses": [{"name": "random", "seed": 0}]},
            "<"),
    "cam": ({"name": "cam", "compression_interval": 4, "target_size": 64, "presses": [{"name": "knorm"}]}, 1.0),
    "compression_ratio_decoding": ({"name": "compression_ratio_decoding", "compression_interval": 4,
                                    "presses": [{"name": "knorm"}]}, 1.0),
    "moe_router": ({"name": "moe_router", "compression_ratio": HALF}, HALF),  # its shipped artifact
}
ARTIFACT_PRESSES = ("kvzap", "qfilter", "duo_attention", "fastkvzip", "expected_attention_stats", "lukv")
NOT_SERVABLE = ("restorekv",)
GREEDY = SamplingParams(max_tokens=8)


def test_the_table_covers_every_catalog_press():
    assert set(CATALOG) == set(SPECS) | set(ARTIFACT_PRESSES) | set(NOT_SERVABLE)


def test_every_kvpress_press_class_is_registered():
    import kvpress

    served = {entry.press_class for entry in CATALOG.values()}
    served |= {base for cls in served for base in cls.__mro__}  # local-artifact adapters subclass kvpress's
    classes = {getattr(kvpress, n) for n in kvpress.__all__ if n.endswith("Press")}
    assert classes - served - {kvpress.BasePress, kvpress.ScorerPress} == set()


@pytest.fixture(scope="module", params=DTYPES)
def engine(request, engines):
    """Every test here runs in both dtypes the engine serves (float32, and bfloat16: auto's choice
    on CUDA and on AMX / AVX-512 BF16 CPUs)."""
    return engines(request.param)


@pytest.fixture(scope="module")
def full_bytes(engine) -> int:
    return engine.prefill(document(6), PressSpec()).nbytes


def _check(engine, spec: dict, expected: float | str, full: int) -> None:
    ckv = engine.prefill(document(6), PressSpec.model_validate(spec))
    pool = KVPool(KVPoolConfig(host_budget_bytes=1 << 30))
    handle = pool.put(ckv, SessionId("s"))
    assert pool.info(handle).nbytes == ckv.nbytes
    fraction = ckv.nbytes / full
    if expected == "<":
        assert fraction < 0.999
    else:
        assert abs(fraction - expected) < 0.03, fraction
    text, tokens, finish = engine.answer(pool.get(handle), "What is the secret code of the vault?", GREEDY)
    assert tokens and text.strip() and finish in ("stop", "length")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_press_prefills_stores_answers_and_shrinks_bytes(engine, full_bytes, name):
    spec, expected = SPECS[name]
    _check(engine, spec, expected, full_bytes)


@pytest.mark.parametrize("name", ARTIFACT_PRESSES + NOT_SERVABLE)
def test_press_without_its_artifact_is_a_press_spec_error_saying_what_it_needs(name):
    entry = CATALOG[name]
    with pytest.raises(PressSpecError) as error:
        resolve(PressSpec.model_validate({"name": name, "compression_ratio": HALF}))
    assert entry.needs and entry.needs.split(":")[0].split(" ")[0] in str(error.value)
    row = next(r for r in describe_presses() if r["name"] == name)
    assert row["needs"] == entry.needs and row["servable"] == entry.servable


def _artifacts(engine, tmp_path) -> dict[str, dict]:
    """Local artifacts of the right shapes for the embedded model (random weights)."""
    from kvpress.presses.expected_attention_with_stats import ExpectedAttentionStats
    from kvpress.presses.fastkvzip_press import FastKVzipGate
    from kvpress.presses.kvzap_press import KVzapConfig, KVzapModel
    from kvpress.presses.qfilter_press import QFilters

    config = engine.model.config
    layers, heads, kv_heads = config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads
    head_dim, hidden = config.head_dim, config.hidden_size
    torch.manual_seed(0)
    QFilters(layers, kv_heads, head_dim).save_pretrained(tmp_path / "qfilt")
    KVzapModel(KVzapConfig(input_dim=hidden, output_dim=kv_heads, n_modules=layers)).save_pretrained(tmp_path / "kvzap")
    (tmp_path / "duo").mkdir()
    (tmp_path / "duo" / "config.json").write_text(json.dumps({"sink_size": 4, "recent_size": 16}))
    np.savetxt(tmp_path / "duo" / "full_attention_heads.tsv", np.random.default_rng(0).random((layers, kv_heads)),
               delimiter="\t")
    gates = [FastKVzipGate(i, hidden, kv_heads, heads // kv_heads, torch.float32, 16, 16).state_dict()
             for i in range(layers)]
    torch.save({"module": gates}, tmp_path / f"q{heads // kv_heads}_dim16_sink16.pt")
    stats = ExpectedAttentionStats(layers, heads, head_dim, "local", "local", 1, 1, 4)
    stats.query_mean.data.normal_()
    stats.save_pretrained(tmp_path / "stats")
    curve = np.broadcast_to((np.arange(1, 100) / 100)[:, None, None], (99, layers, kv_heads)).copy()
    np.save(tmp_path / "curve.npy", curve)
    # requests name artifacts relative to the operator's presses.artifact_dir (presses/policy.py)
    return {
        "kvzap": {"name": "kvzap", "compression_ratio": HALF, "model_path": "kvzap"},
        "qfilter": {"name": "qfilter", "compression_ratio": HALF, "filters_path": "qfilt"},
        "duo_attention": {"name": "duo_attention", "head_compression_ratio": HALF, "pattern_path": "duo"},
        "fastkvzip": {"name": "fastkvzip", "compression_ratio": HALF,
                      "gates_path": f"q{heads // kv_heads}_dim16_sink16.pt"},
        "expected_attention_stats": {"name": "expected_attention_stats", "compression_ratio": HALF,
                                     "stats_folder": "stats"},
        "lukv": {"name": "lukv", "compression_ratio": HALF, "budget_curve_path": "curve.npy"},
    }


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory, engine):
    """One directory per engine (dtype): the artifacts are written for that engine's model."""
    path = tmp_path_factory.mktemp(f"artifacts-{engine.dtype}")
    install_press_policy({"artifact_dir": str(path)})
    yield path
    install_press_policy(None)


@pytest.fixture(scope="module")
def artifact_specs(engine, artifact_dir) -> dict[str, dict]:
    return _artifacts(engine, artifact_dir)


@pytest.mark.parametrize("name", ARTIFACT_PRESSES)
def test_artifact_press_runs_from_a_local_path(engine, full_bytes, artifact_specs, name):
    expected = "<" if name in ("duo_attention",) else HALF
    _check(engine, artifact_specs[name], expected, full_bytes)


def test_missing_local_artifact_is_a_clear_error(engine, artifact_dir):
    spec = PressSpec.model_validate({"name": "qfilter", "compression_ratio": HALF, "filters_path": "no"})
    with pytest.raises(PressSpecError, match="does not exist"):
        engine.prefill(document(2), spec)


def test_an_artifact_path_outside_the_artifact_dir_is_refused(engine, artifact_specs, artifact_dir):
    outside = {**artifact_specs["qfilter"], "filters_path": str(artifact_dir / "qfilt")}  # absolute: refused
    with pytest.raises(PressSpecError, match="not a relative name"):
        engine.prefill(document(2), PressSpec.model_validate(outside))
