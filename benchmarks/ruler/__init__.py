"""A RULER-style synthetic long-context suite, generated locally with fixed seeds (no download).

After RULER (Hsieh et al. 2024, arXiv:2404.06654): needle-in-a-haystack with single and multiple
keys and values and needles of five kinds at several depths, in a noise haystack and in
natural-looking prose with distractor needles; variable tracking; an aggregation task (the most
common word of a list). One file per task family:

``probes`` the item and its scorer; ``needles`` needle kinds and keys; ``haystack`` filler styles
and planting at depths; ``niah``, ``variable_tracking``, ``aggregation`` the task generators;
``suite`` the registry, the lengths (1k / 2k / 4k tokens), the existing question sets and the
choose / report split by seed. Run by benchmarks/ruler_quality.py. Imports only benchmarks.*.
"""

from benchmarks.ruler.probes import Probe, SuiteDocument, score
from benchmarks.ruler.suite import LENGTHS, SPLITS, TASKS, build_suite, question_sets, score_probe, split_of

__all__ = ["LENGTHS", "SPLITS", "TASKS", "Probe", "SuiteDocument", "build_suite", "question_sets", "score",
           "score_probe", "split_of"]
