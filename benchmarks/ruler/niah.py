"""Needle-in-a-haystack tasks (RULER's ``niah_single``, ``niah_multikey``, ``niah_multivalue``).

- ``niah_single``: one needle in the noise haystack; its kind turns with seed and length.
- ``niah_multikey``: four needles of four kinds under four keys in essay prose, plus two
  distractor needles (same kinds, keys never asked); each asked key is a probe.
- ``niah_multivalue``: three numbers under one key (and one under a distractor key) in essay
  prose; one probe that must give all three.
"""

from __future__ import annotations

import random

from benchmarks.ruler import needles
from benchmarks.ruler.haystack import TokenCounter, plant
from benchmarks.ruler.probes import Probe, SuiteDocument

DEPTHS = (0.1, 0.3, 0.5, 0.7, 0.9)
PREAMBLE = ("Some special magic values are hidden within the following text. Make sure to memorize them. "
            "I will quiz you about them afterwards.\n\n")


def _rng(task: str, seed: int, target_tokens: int) -> random.Random:
    return random.Random(f"{task}-{seed}-{target_tokens}")


def niah_single(seed: int, target_tokens: int, count: TokenCounter) -> SuiteDocument:
    rng = _rng("niah_single", seed, target_tokens)
    kind = needles.KINDS[(seed + target_tokens // 1000) % len(needles.KINDS)]
    depth = DEPTHS[(seed * 2 + target_tokens // 1000) % len(DEPTHS)]
    k, v = needles.key(rng, set()), needles.value(kind, rng, set())
    text, (at,) = plant("noise", rng, PREAMBLE, [(needles.needle(kind, k, v), depth)], target_tokens, count)
    probe = Probe(needles.question(kind, k), (v,), kind, at)
    return SuiteDocument(f"niah_single-{target_tokens}-{seed}", "ruler", "niah_single", seed, target_tokens, text,
                         (probe,))


def niah_multikey(seed: int, target_tokens: int, count: TokenCounter) -> SuiteDocument:
    rng = _rng("niah_multikey", seed, target_tokens)
    kinds = rng.sample(needles.KINDS, 4)
    depths = sorted(rng.sample(DEPTHS, 4))
    rng.shuffle(kinds)
    keys, values = set(), set()
    asked = [(kind, needles.key(rng, keys), needles.value(kind, rng, values), d) for kind, d in zip(kinds, depths)]
    decoys = [(kind, needles.key(rng, keys), needles.value(kind, rng, values), rng.choice(DEPTHS) + 0.05)
              for kind in rng.sample(kinds, 2)]
    facts = [(needles.needle(kind, k, v), d) for kind, k, v, d in asked + decoys]
    text, at = plant("essay", rng, PREAMBLE, facts, target_tokens, count)
    probes = tuple(Probe(needles.question(kind, k), (v,), kind, at[i],
                         tuple(v2 for kind2, _, v2, _ in asked + decoys if kind2 == kind and v2 != v))
                   for i, (kind, k, v, _) in enumerate(asked))
    return SuiteDocument(f"niah_multikey-{target_tokens}-{seed}", "ruler", "niah_multikey", seed, target_tokens, text,
                         probes)


def niah_multivalue(seed: int, target_tokens: int, count: TokenCounter) -> SuiteDocument:
    rng = _rng("niah_multivalue", seed, target_tokens)
    keys, values = set(), set()
    k, decoy = needles.key(rng, keys), needles.key(rng, keys)
    vs = [needles.value("number", rng, values) for _ in range(3)]
    other = needles.value("number", rng, values)
    depths = sorted(rng.sample(DEPTHS, 3))
    facts = [(needles.needle("number", k, v), d) for v, d in zip(vs, depths)]
    facts.append((needles.needle("number", decoy, other), rng.choice(DEPTHS) + 0.05))
    text, at = plant("essay", rng, PREAMBLE, facts, target_tokens, count)
    probe = Probe(f"What are all the special magic numbers for {k}?", tuple(vs),
                  "number", at[0], (other,))
    return SuiteDocument(f"niah_multivalue-{target_tokens}-{seed}", "ruler", "niah_multivalue", seed, target_tokens,
                         text, (probe,))
