"""Does ``torch.compile`` of the model forward pay for kvfleet's batched decode on CPU? (issue 26, item 5)

In process, 1 torch thread, the model in ``--dtype`` (default: what ``auto`` picks): one session
(a ~500-token document under the default press), then rounds of ``--streams`` greedy generations
of ``--tokens`` tokens each (``ignore_eos``) through the real ``DecodeLoop`` (scheduler + packed
runner), eager and with ``model.forward`` replaced by ``torch.compile(..., dynamic=True)``,
alternating eager / compiled rounds. The first compiled round includes the compilation.

    nice -n 10 python benchmarks/decode_compile.py --streams 8 --tokens 24 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FILLER = ("The committee discussed the annual budget, the new library wing and several unrelated matters. "
          "Minutes were taken and approved without changes. ")


def decode_round(engine, ckv, streams: int, tokens: int) -> float:
    """Aggregate completion tokens/s of ``streams`` generations submitted at once."""
    from deployments.engine.decode.loop import DecodeLoop
    from deployments.engine.sampling import SamplingParams

    loop = DecodeLoop(engine)
    done = threading.Semaphore(0)
    counts = [0] * streams

    def deliver_for(i: int):
        def deliver(event) -> None:
            if isinstance(event, BaseException) or getattr(event, "finish_reason", None):
                done.release()
            else:
                counts[i] += 1
        return deliver

    questions = [engine.tokenizer.encode(f" Question {i}: what did the committee discuss?", add_special_tokens=False)
                 for i in range(streams)]
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    start = time.perf_counter()
    for i in range(streams):
        loop.submit(ckv, questions[i], params, deliver_for(i))
    for _ in range(streams):
        if not done.acquire(timeout=900):
            raise TimeoutError("a generation did not finish in 900 s")
    wall = time.perf_counter() - start
    loop.close()
    return sum(counts) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from deployments.config import AppConfig
    from deployments.engine.engine import KVEngine
    from deployments.engine.model_loader import EMBEDDED_MODEL_ID, ModelConfig, load_model
    from kvpool import PressSpec

    engine = KVEngine(load_model(ModelConfig(dtype=args.dtype)), EMBEDDED_MODEL_ID)
    ckv = engine.prefill("Document. " + FILLER * 20, PressSpec.model_validate(
        AppConfig().default_press.model_dump(mode="json", exclude_none=True)))
    eager = engine.model.forward
    compiled = torch.compile(eager, dynamic=True)
    decode_round(engine, ckv, 2, 4)  # warm-up
    for r in range(args.rounds):
        for name, forward in (("eager", eager), ("compiled", compiled)):
            engine.model.forward = forward
            start = time.perf_counter()
            try:
                rate = decode_round(engine, ckv, args.streams, args.tokens)
                print(f"round {r} {name} {engine.dtype}: {rate:.2f} tok/s ({time.perf_counter() - start:.1f} s)",
                      flush=True)
            except Exception as exc:  # noqa: BLE001
                print(f"round {r} {name}: failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    engine.model.forward = eager


if __name__ == "__main__":
    main()
