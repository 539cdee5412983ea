"""KVzip's scoring per layer: kvpress's formula vs kvfleet's blocked float32 scoring (issue 26).

For a chunk of ``n`` context tokens KVzip scores every context key by the largest softmax
attention any of the ~``n`` reconstruction queries pays it (deployments/engine/presses/kvzip_blocked.py).
This times one layer of that scoring with the embedded model's shapes (3 KV heads, 3 query heads
per KV head, head size 64), 1 torch thread, random queries and keys: kvpress's formula in the
model's dtype (matmul, division, causal mask, softmax over the whole matrix, max) against
``max_attention`` at several block sizes, and checks each against float64.

    python benchmarks/kvzip_scoring.py        # ~1 min; writes benchmarks/results/kvzip_scoring.{json,png}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.provenance import provenance  # noqa: E402
from deployments.engine.presses.kvzip_blocked import max_attention  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HEADS, GROUPS, DIM, SINKS, PROMPT = 3, 3, 64, 4, 16


def kvpress_formula(queries: torch.Tensor, keys: torch.Tensor, first: int, count: int) -> torch.Tensor:
    """kvpress 0.5.5 ``KVzipPress._compute_cross_attention`` + ``score_kvzip``'s max, unscaled queries."""
    q_len = queries.shape[2]
    weights = torch.matmul(queries, keys.unsqueeze(1).transpose(-2, -1).contiguous()) / math.sqrt(DIM)
    mask = torch.full((q_len, q_len), torch.finfo(weights.dtype).min, dtype=weights.dtype)
    cond = torch.arange(q_len)
    mask.masked_fill_(cond < (cond + 1).view(q_len, 1), 0)
    weights[..., -q_len:, -q_len:] += mask
    return torch.softmax(weights, dim=-1)[..., first:first + count].amax(dim=(1, 2))


def timed(fn, rounds: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048], help="chunk lengths (kvpress: <= 2048)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "kvzip_scoring.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n in args.tokens:
        q_len = n + PROMPT
        gen = torch.Generator().manual_seed(n)
        queries = torch.randn(HEADS, GROUPS, q_len, DIM, generator=gen)
        keys = torch.randn(HEADS, SINKS + n + q_len, DIM, generator=gen) * 1.5
        exact = kvpress_formula(queries.double(), keys.double(), SINKS, n)
        for dtype in (torch.bfloat16, torch.float32):
            q, k = queries.to(dtype), keys.to(dtype)
            name = str(dtype).removeprefix("torch.")
            err = float(((kvpress_formula(q, k, SINKS, n).double() - exact) / exact).abs().max())
            rows.append({"tokens": n, "dtype": name, "method": "kvpress", "block": None, "error": err,
                         "ms_per_layer": 1000 * timed(lambda: kvpress_formula(q, k, SINKS, n), args.rounds)})
            scaled = q * (1 / math.sqrt(DIM))
            for block in args.blocks:
                err = float(((max_attention(scaled, k, SINKS, n, block).double() - exact) / exact).abs().max())
                ms = 1000 * timed(lambda: max_attention(scaled, k, SINKS, n, block), args.rounds)
                rows.append({"tokens": n, "dtype": name, "method": "blocked", "block": block, "error": err,
                             "ms_per_layer": ms})
            for row in rows[-1 - len(args.blocks):]:
                print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"provenance": provenance(
        {"tokens": args.tokens, "blocks": args.blocks, "rounds": args.rounds, "threads": 1}), "rows": rows}, indent=1))
    plot(rows, args.out.with_suffix(".png"))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, dtype in zip(axes, ("bfloat16", "float32")):
        for n in sorted({r["tokens"] for r in rows}):
            mine = [r for r in rows if r["tokens"] == n and r["dtype"] == dtype]
            labels = ["kvpress" if r["method"] == "kvpress" else f"block {r['block']}" for r in mine]
            ax.plot(labels, [r["ms_per_layer"] for r in mine], marker="o", label=f"{n} tokens")
        ax.set_title(f"model dtype {dtype}")
        ax.set_ylabel("ms per layer (1 thread)")
        ax.legend()
    fig.suptitle("KVzip scoring of one layer: kvpress's formula vs blocked float32")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
