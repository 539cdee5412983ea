"""Variable tracking (RULER's ``vt``): chains of assignments hidden in the noise haystack.

Two chains of ``hops`` assignments each ("VAR QPE = 64179." ... "VAR SGQ = VAR QPE."), spread
over the context in order; one probe per chain asks for every variable that holds its value, and
the other chain's variables are its distractors.
"""

from __future__ import annotations

import random
import string

from benchmarks.ruler.haystack import TokenCounter, plant
from benchmarks.ruler.probes import Probe, SuiteDocument

PREAMBLE = ("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n")


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
        if name not in taken:
            taken.add(name)
            return name


def variable_tracking(seed: int, target_tokens: int, count: TokenCounter, chains: int = 2,
                      hops: int = 2) -> SuiteDocument:
    rng = random.Random(f"variable_tracking-{seed}-{target_tokens}")
    taken: set[str] = set()
    names = [[_name(rng, taken) for _ in range(hops + 1)] for _ in range(chains)]
    values = [str(v) for v in rng.sample(range(10_000, 99_999), chains)]
    facts: list[tuple[str, float]] = []
    for c, (chain, value) in enumerate(zip(names, values)):
        statements = [f"VAR {chain[0]} = {value}."] + [f"VAR {b} = VAR {a}." for a, b in zip(chain, chain[1:])]
        for h, statement in enumerate(statements):  # chain c's hops in order, chains interleaved
            facts.append((statement, round((h * chains + c + 0.5) / (len(statements) * chains), 3)))
    text, at = plant("noise", rng, PREAMBLE, facts, target_tokens, count)
    probes = tuple(Probe(f"Find all variables that are assigned the value {value} in the text above.",
                         tuple(chain), "variable", at[c * (hops + 1)],
                         tuple(n for other in names if other is not chain for n in other))
                   for c, (chain, value) in enumerate(zip(names, values)))
    return SuiteDocument(f"variable_tracking-{target_tokens}-{seed}", "ruler", "variable_tracking", seed,
                         target_tokens, text, probes)
