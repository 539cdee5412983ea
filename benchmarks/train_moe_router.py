"""Train the ``moe_router`` press's gate for the embedded model and write its artifact.

    python benchmarks/train_moe_router.py            # the shipped artifact (about 10 min, 1 thread)
    python benchmarks/train_moe_router.py --quick    # smoke run: 2 short documents, few layers fitted

Calibration text is generated locally with fixed seeds (no downloads): the prose and chat
generators of the quality benchmark (benchmarks/quality_tasks, quality_chat) with seeds the
benchmark never uses (100+ to fit, 200+ to validate), at 256 / 512 / 1024 tokens. The signal
(benchmarks/moe_router_signal.py) is KVzip-style: how much each context token changes the
attention output of held-back "repeat the context" queries.

Fitting is per attention layer and KV head, independent of the others: the gate's parameters
``W[l, h]`` (``[experts, 1 + features]``, moe_gate.py) minimise the share of token importance
the mixed score drops, averaged over the documents and the ratios 0.25 / 0.5 / 0.75, by a
deterministic coordinate search (best of: uniform start and each expert alone; step sizes
2 .. 1/8) with a small L2 penalty. No randomness: the same text gives the same artifact.

The validation documents are then scored with the real press code (RouterGate + ExpertRouter):
the attention-output error (relative, held-back queries, mean over layers) and the importance
lost, for each expert alone and each router type, per ratio. They go into the artifact's
``training`` section and ``benchmarks/results/moe_router_training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.moe_router_signal import Signal, capture, log_progress, lost_share, n_kept  # noqa: E402

RATIOS = (0.25, 0.5, 0.75)
TASKS = ("needle", "facts", "chat")
LENGTHS = (256, 512, 1024)
L2 = 1e-4
STEPS = (2.0, 1.0, 0.5, 0.25, 0.125)
RESULTS = Path(__file__).resolve().parent / "results"


def calibration_ids(engine, seeds: list[int], lengths: tuple[int, ...]) -> list[tuple[str, list[int]]]:
    """(doc id, context token ids as the engine prefills them) for every task x seed x length."""
    from benchmarks.quality_sets import build_documents

    count = lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    docs = [d for length in lengths for d in build_documents(list(TASKS), seeds, length, count)]
    return [(f"{d.doc_id}@{d.target_tokens}", engine.frame_for(d.context)[1]) for d in docs]


def _padded(signals: list[Signal], layer: int, head: int):
    """Z ``[D, R, E, Tmax]`` (padding -inf after mixing, see ``_loss``), C ``[D, Tmax]``, X ``[D, R, F]``,
    K ``[D, R]`` keep counts, pad ``[D, Tmax]`` bool."""
    t_max = max(s.tokens for s in signals)
    d, (r, e) = len(signals), signals[0].z.shape[1:3]
    z = torch.zeros(d, r, e, t_max)
    c = torch.zeros(d, t_max)
    pad = torch.ones(d, t_max, dtype=torch.bool)
    for i, s in enumerate(signals):
        z[i, :, :, : s.tokens] = s.z[layer, :, :, head]
        c[i, : s.tokens] = s.c[layer, head]
        pad[i, : s.tokens] = False
    x = torch.stack([s.x[layer, :, head] for s in signals])
    k = torch.tensor([[n_kept(s.tokens, ratio) for ratio in s.ratios] for s in signals])
    return z, c, x, k, pad


def _loss(theta: torch.Tensor, data, z_x: torch.Tensor) -> float:
    """Mean importance share dropped by the gate's mixture over (doc, ratio), + L2 on ``theta``."""
    z, c, _, k, pad = data
    logits = torch.einsum("ef,drf->dre", theta, z_x)
    w = torch.softmax(logits, dim=-1)
    scores = torch.einsum("dre,dret->drt", w, z).masked_fill(pad.unsqueeze(1), float("-inf"))
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    ranked = c.unsqueeze(1).expand_as(scores).gather(-1, order)
    kept = (ranked * (torch.arange(scores.shape[-1]) < k.unsqueeze(-1))).sum(-1)
    lost = 1 - kept / c.sum(-1, keepdim=True).clamp_min(1e-12)
    return float(lost.mean()) + L2 * float(theta.pow(2).sum())


def fit_head(data, mean: torch.Tensor, std: torch.Tensor, experts: int) -> tuple[torch.Tensor, float]:
    """Coordinate search for one (layer, head); returns ``theta`` ``[E, 1 + F]`` and its loss."""
    from deployments.engine.presses.moe_gate import standardized

    x = data[2]
    z_x = torch.cat([torch.ones(*x.shape[:2], 1), standardized(x, mean, std)], dim=-1)
    features = z_x.shape[-1]
    starts = [torch.zeros(experts, features)]
    for e in range(experts):
        start = torch.zeros(experts, features)
        start[e, 0] = 4.0
        starts.append(start)
    theta = min(starts, key=lambda t: _loss(t, data, z_x))
    best = _loss(theta, data, z_x)
    for step in STEPS:
        for _ in range(4):
            improved = False
            for index in range(theta.numel()):
                for sign in (1.0, -1.0):
                    trial = theta.clone()
                    trial.view(-1)[index] += sign * step
                    loss = _loss(trial, data, z_x)
                    if loss < best - 1e-7:
                        theta, best, improved = trial, loss, True
                        break
            if not improved:
                break
    return theta, best


def fit(signals: list[Signal], experts: tuple[str, ...], layers: int, heads: int, fit_layers: int,
        log) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gate weights ``[L, H, E, 1 + F]`` and the feature mean / std (layers past ``fit_layers``
    stay uniform, for --quick)."""
    allx = torch.cat([s.x.reshape(-1, s.x.shape[-1]) for s in signals])
    mean, std = allx.mean(0), allx.std(0).clamp_min(1e-3)
    weights = torch.zeros(layers, heads, len(experts), 1 + allx.shape[-1])
    for layer in range(min(layers, fit_layers)):
        for head in range(heads):
            weights[layer, head], _ = fit_head(_padded(signals, layer, head), mean, std, len(experts))
        log(log_progress(layer + 1, min(layers, fit_layers), f"layers fitted ({time.strftime('%H:%M:%S')})"))
    return weights, mean, std


def routed_keep(signal: Signal, ratio_index: int, gate, router) -> list[torch.Tensor]:
    """Per layer ``[H, T]`` keep masks of the press's own routing (gate + router rule) at one ratio."""
    ratio = signal.ratios[ratio_index]
    keep_n = n_kept(signal.tokens, ratio)
    router.reset(gate.num_layers, gate.num_kv_heads)
    masks = []
    for layer in range(signal.z.shape[0]):
        w = router.route(gate.probabilities(layer, signal.x[layer, ratio_index]))
        scores = torch.einsum("he,eht->ht", w, signal.z[layer, ratio_index])
        idx = scores.topk(keep_n, dim=-1).indices
        masks.append(torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True))
    return masks


def expert_keep(signal: Signal, ratio_index: int, expert: int) -> list[torch.Tensor]:
    keep_n = n_kept(signal.tokens, signal.ratios[ratio_index])
    out = []
    for layer in range(signal.z.shape[0]):
        idx = signal.z[layer, ratio_index, expert].topk(keep_n, dim=-1).indices
        out.append(torch.zeros_like(signal.c[layer], dtype=torch.bool).scatter_(-1, idx, True))
    return out


def evaluate(signal: Signal, gate, experts: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {ratio: {"output_error", "lost_importance"}}}`` on one validation signal."""
    from deployments.engine.presses.moe_routing import ROUTER_TYPES, ExpertRouter, validate_options

    out: dict[str, dict[str, dict[str, float]]] = {}
    methods: dict[str, Any] = {f"expert:{name}": e for e, name in enumerate(experts)}
    methods.update({f"router:{rt}": rt for rt in ROUTER_TYPES})
    for method, what in methods.items():
        out[method] = {}
        for ri, ratio in enumerate(signal.ratios):
            if isinstance(what, int):
                masks = expert_keep(signal, ri, what)
            else:
                router = ExpertRouter(validate_options(what, 0, 1.0, 0.0, False, len(experts)), experts)
                masks = routed_keep(signal, ri, gate, router)
            err = sum(signal.output_error(layer, m) for layer, m in enumerate(masks)) / len(masks)
            lost = sum(float(lost_share(m.float(), signal.c[layer], int(m[0].sum())).mean())
                       for layer, m in enumerate(masks)) / len(masks)
            out[method][str(ratio)] = {"output_error": round(err, 5), "lost_importance": round(lost, 5)}
    return out


def _mean_tables(tables: list[dict]) -> dict:
    out: dict = {}
    for method in tables[0]:
        out[method] = {}
        for ratio in tables[0][method]:
            out[method][ratio] = {k: round(sum(t[method][ratio][k] for t in tables) / len(tables), 5)
                                  for k in tables[0][method][ratio]}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="artifact path (default: the shipped one)")
    parser.add_argument("--report", type=Path, default=RESULTS / "moe_router_training.json")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[100])
    parser.add_argument("--val-seeds", type=int, nargs="+", default=[200])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--signal", choices=("kvzip", "output"), default="kvzip",
                        help="token importance: KVzip's max attention, or first-order attention-output change")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 short documents, 2 layers fitted")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model
    from deployments.engine.presses.moe_gate import BUNDLED_DIR, EMBEDDED_ARTIFACT, RouterGate
    from deployments.engine.presses.moe_router import EXPERTS

    engine = KVEngine(load_model(ModelConfig()), EMBEDDED_MODEL_ID)
    config = engine.model.config
    layers, heads = config.num_hidden_layers, config.num_key_value_heads
    experts = tuple(EXPERTS)
    lengths = (160,) if args.quick else LENGTHS
    train = calibration_ids(engine, args.train_seeds, lengths)[: 2 if args.quick else None]
    val = calibration_ids(engine, args.val_seeds, (160,) if args.quick else (512,))[: 1 if args.quick else None]
    started = time.time()
    signals = []
    for i, (doc_id, ids) in enumerate(train):
        signals.append(capture(engine, ids, RATIOS, doc_id, signal=args.signal))
        print(log_progress(i + 1, len(train), f"calibration contexts captured ({len(ids)} tokens)"), flush=True)
    weights, mean, std = fit(signals, experts, layers, heads, 2 if args.quick else layers, print)
    training = {"script": "benchmarks/train_moe_router.py", "ratios": list(RATIOS),
                "train_docs": [d for d, _ in train], "validation_docs": [d for d, _ in val],
                "objective": f"importance share dropped ({args.signal} importance of held-back repeat queries)",
                "seconds": round(time.time() - started)}
    gate = RouterGate(EMBEDDED_MODEL_ID, layers, heads, experts, mean, std, weights, training)
    gate = RouterGate.from_json(json.loads(json.dumps(gate.to_json())))  # evaluate what is written (rounded)
    tables = [evaluate(capture(engine, ids, RATIOS, doc_id, keep_attention=True, signal=args.signal), gate, experts)
              for doc_id, ids in val]
    validation = _mean_tables(tables)
    training["validation"] = validation
    gate = RouterGate(gate.model, layers, heads, experts, gate.feature_mean, gate.feature_std, gate.weights, training)
    out = args.out or (BUNDLED_DIR / EMBEDDED_ARTIFACT)
    if args.quick and args.out is None:
        out = Path("/tmp/moe_router_quick.json")
    out.write_text(json.dumps(gate.to_json(), separators=(",", ":")) + "\n")
    if not args.quick:
        args.report.write_text(json.dumps({"benchmark": "moe_router_training", "artifact": str(out),
                                           "training": training}, indent=1))
    print(json.dumps(validation, indent=1))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
