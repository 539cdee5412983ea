"""Where a press's session load spends its time, float32 vs bfloat16 (issue 26), in process.

Loads one ~``--tokens``-token document under ``--press`` (default: the app's default press) once
per dtype (after a warm-up load), under ``torch.profiler``, 1 torch thread, and prints the wall
time and the ``--top`` operators by self CPU time of each dtype side by side.

    nice -n 10 python benchmarks/press_dtype_profile.py --tokens 1024        # ~3 min here
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FILLER = ("The committee discussed the annual budget, the new library wing and several unrelated matters. "
          "Minutes were taken and approved without changes. ")


def profile(dtype: str, press: dict, text: str) -> tuple[float, dict[str, float]]:
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model
    from kvpool import PressSpec

    engine = KVEngine(load_model(ModelConfig(dtype=dtype)), EMBEDDED_MODEL_ID)
    spec = PressSpec.model_validate(press)
    engine.prefill("Warm-up. " + FILLER * 8, spec)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        engine.prefill(text, spec)
        wall = time.perf_counter() - start
    ops = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    return wall, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--press", default=None, help="press name (default: AppConfig().default_press)")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    import torch

    from deployments.config import AppConfig

    torch.set_num_threads(1)
    press = AppConfig().default_press.model_dump(mode="json", exclude_none=True)
    if args.press:
        press = {"name": args.press, "compression_ratio": 0.5}
    text = "Document. " + FILLER * (args.tokens // 24)
    results = {dtype: profile(dtype, press, text) for dtype in ("float32", "bfloat16")}
    (w32, f32), (w16, b16) = results["float32"], results["bfloat16"]
    print(f"press {press}, ~{args.tokens} tokens: load float32 {w32:.2f} s, bfloat16 {w16:.2f} s ({w32 / w16:.2f}x)")
    top = sorted(set(f32) | set(b16), key=lambda k: -max(f32.get(k, 0), b16.get(k, 0)))[: args.top]
    print(f"{'operator':40s} {'float32 s':>10s} {'bfloat16 s':>10s} {'ratio':>6s}")
    for key in top:
        a, b = f32.get(key, 0.0), b16.get(key, 0.0)
        print(f"{key[:40]:40s} {a:10.2f} {b:10.2f} {(a / b if b else float('inf')):6.2f}")


if __name__ == "__main__":
    main()
