"""Structured-outputs benchmark (issue 15): time per output token with a JSON schema vs without.

No Ray, no HTTP: one KVEngine in this process with 1 torch thread (a replica's default), the
embedded SmolLM2-135M, float32 on CPU, answering on a stored knorm-0.5 cache of the facts
document (as a session does). Variants, measured in interleaved rounds (same run, same load):

- ``free``: no constraint (``ignore_eos``, ``--tokens`` tokens);
- ``json_schema``: the facts-extraction schema (llguidance mask every step, ends by forced EOS);
- ``json_object``: any JSON object;
- ``penalties``: repetition 1.3 + frequency 0.5 + presence 0.5 + a logit_bias entry.

Time per output token (TPOT) of one answer = (last step - first step) / (tokens - 1), so the
question's prefill (first step) is left out. ``sampler_ms_per_token``: time inside the request's
TokenSampler (processors + pick), i.e. the per-token cost the constraint adds. The goal is a
TPOT ratio json_schema / free <= 1.3 (median of the per-round ratios). On a loaded machine
the TPOT ratio is noisy both ways; ``sampler_only_ratio`` = 1 + (sampler ms added per token) /
(free TPOT) is the load-independent view of the same cost.

    python benchmarks/structured_outputs.py                 # ~3 min on the 2-core CPU machine
    python benchmarks/structured_outputs.py --rounds 2      # quick

Writes benchmarks/results/structured_outputs.json and structured_outputs.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.provenance import RESULTS_DIR, finish, provenance  # noqa: E402
from benchmarks.timing import summarize  # noqa: E402

QUESTION = "Extract the vault code, Alice's birth city, the meeting day and a one-line summary as JSON."
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["vault_code", "birth_city", "meeting_day", "summary"],
    "properties": {"vault_code": {"type": "string", "maxLength": 8}, "birth_city": {"type": "string", "maxLength": 24},
                   "meeting_day": {"type": "string", "maxLength": 12}, "summary": {"type": "string", "maxLength": 160}},
}
GOAL_RATIO = 1.3


def _log(message: str) -> None:
    print(f"[structured_outputs {time.strftime('%H:%M:%S')}] {message}", flush=True)


class TimedSampler:
    """Wraps a TokenSampler and adds up the seconds spent inside it (same contract)."""

    def __init__(self, inner: Any):
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, logits: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.inner(logits)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def variants(tokens: int) -> dict[str, Any]:
    from deployments.engine.sampling import GuidedSpec, SamplingParams

    return {
        "free": SamplingParams(max_tokens=tokens, ignore_eos=True),
        "json_schema": SamplingParams(max_tokens=4 * tokens, guided=GuidedSpec(kind="json_schema",
                                                                               spec=json.dumps(SCHEMA))),
        "json_object": SamplingParams(max_tokens=4 * tokens, guided=GuidedSpec(kind="json_object")),
        "penalties": SamplingParams(max_tokens=tokens, ignore_eos=True, repetition_penalty=1.3,
                                    frequency_penalty=0.5, presence_penalty=0.5, logit_bias={42: -100}),
    }


def one_answer(engine: Any, ckv: Any, params: Any) -> dict[str, Any]:
    """TPOT, token count and sampler seconds of one greedy answer."""
    made: list[TimedSampler] = []
    original = engine.new_sampler

    def timed(p: Any, prompt_ids: list[int]) -> TimedSampler:
        made.append(TimedSampler(original(p, prompt_ids)))
        return made[-1]

    engine.new_sampler = timed
    try:
        stamps, text = [], []
        for step in engine.generate(ckv, QUESTION, params):
            if step.token is not None:
                stamps.append(time.perf_counter())
            text.append(step.text)
    finally:
        del engine.new_sampler
    sampler = made[0]
    return {"tokens": len(stamps), "tpot_s": (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1),
            "sampler_s_per_token": sampler.seconds / max(1, sampler.calls), "text": "".join(text)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from benchmarks.engine_ttft import load_engine
    from kvpool.press_spec import PressSpec
    from tests.conftest import document

    torch.set_num_threads(args.threads)
    engine, _ = load_engine(args.threads)
    ckv = engine.prefill(document(40), PressSpec(name="knorm", compression_ratio=0.5))
    cases = variants(args.tokens)
    for name, params in cases.items():  # warm-up: compile each grammar once (cached afterwards)
        one_answer(engine, ckv, params.model_copy(update={"max_tokens": 4}))
    samples: dict[str, list[dict]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            samples[name].append(one_answer(engine, ckv, cases[name]))
            _log(f"round {r + 1}/{args.rounds} {name}: {samples[name][-1]['tokens']} tokens, "
                 f"{samples[name][-1]['tpot_s'] * 1000:.1f} ms/token")
    return summarise(samples, engine)


def summarise(samples: dict[str, list[dict]], engine: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"variants": {}, "ratios_vs_free": {}}
    for name, runs in samples.items():
        out["variants"][name] = {
            "tpot_ms": summarize([s["tpot_s"] * 1000 for s in runs], "ms"),
            "sampler_ms_per_token": summarize([s["sampler_s_per_token"] * 1000 for s in runs], "ms"),
            "tokens": [s["tokens"] for s in runs], "example": runs[0]["text"][:300]}
        if name != "free":
            ratios = [s["tpot_s"] / f["tpot_s"] for s, f in zip(runs, samples["free"])]
            added_ms = (out["variants"][name]["sampler_ms_per_token"]["median_ms"]
                        - out["variants"]["free"]["sampler_ms_per_token"]["median_ms"])
            out["ratios_vs_free"][name] = {
                "median": statistics.median(ratios), "per_round": ratios,
                # the load-independent view: the sampler time the constraint adds, over free TPOT
                "sampler_added_ms_per_token": added_ms,
                "sampler_only_ratio": 1 + added_ms / out["variants"]["free"]["tpot_ms"]["median_ms"]}
    schema_runs = samples["json_schema"]
    out["json_schema_valid"] = all(_valid(s["text"]) for s in schema_runs)
    out["goal"] = {"tpot_ratio_json_schema_vs_free_max": GOAL_RATIO,
                   "met": out["ratios_vs_free"]["json_schema"]["median"] <= GOAL_RATIO}
    out["grammar_compilations"] = engine.grammars.compilations
    return out


def _valid(text: str) -> bool:
    import jsonschema

    try:
        jsonschema.validate(json.loads(text), SCHEMA)
        return True
    except (ValueError, jsonschema.ValidationError):
        return False


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["variants"])
    tpot = [result["variants"][n]["tpot_ms"]["median_ms"] for n in names]
    sampler = [result["variants"][n]["sampler_ms_per_token"]["median_ms"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, tpot, label="time per output token (median)")
    ax.bar(names, sampler, label="of which in the sampler (mask, penalties, pick)")
    ax.axhline(tpot[0] * GOAL_RATIO, color="red", linestyle="--", label=f"goal: {GOAL_RATIO}x free")
    for i, name in enumerate(names[1:], start=1):
        ax.text(i, tpot[i], f"{result['ratios_vs_free'][name]['median']:.2f}x", ha="center", va="bottom")
    ax.set_ylabel("ms per output token")
    ax.set_title("Structured outputs: per-token cost (SmolLM2-135M, CPU, 1 thread)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=48, help="tokens of the free / penalties answers")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    result = {"provenance": provenance(vars(args))}
    result.update(run(args))
    finish(result, started)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "structured_outputs.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS_DIR / "structured_outputs.png")
    ratio = result["ratios_vs_free"]["json_schema"]["median"]
    _log(f"json_schema / free TPOT = {ratio:.2f}x (goal <= {GOAL_RATIO}); wrote {RESULTS_DIR}/structured_outputs.json")


if __name__ == "__main__":
    main()
