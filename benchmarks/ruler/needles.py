"""Needle values of several kinds and the keys they are filed under (seeded, no data files).

Kinds (RULER uses words, numbers and UUIDs; names and codes are added because a session's
documents are full of them): ``number`` (7 digits), ``name`` (first + last name), ``word``
(a concrete noun), ``code`` (two letters, dash, four digits), ``uuid`` (UUID4 text). Keys are
adjective-noun pairs ("quiet-harbor"), as in RULER's ``niah`` tasks.
"""

from __future__ import annotations

import random
import uuid

KINDS = ("number", "name", "word", "code", "uuid")
PLURAL = {"number": "numbers", "name": "names", "word": "words", "code": "codes", "uuid": "uuids"}

_ADJECTIVES = ("quiet", "amber", "brave", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly",
               "lucky", "mellow", "narrow", "olive", "proud", "rapid", "silent", "tidy", "vivid", "wise", "young")
_NOUNS = ("harbor", "falcon", "meadow", "lantern", "canyon", "orchard", "glacier", "compass", "thistle", "beacon",
          "pebble", "walrus", "violin", "quarry", "saddle", "tunnel", "ember", "garnet", "kettle", "marble")
_FIRST = ("Marta", "Tomas", "Ingrid", "Kofi", "Lucia", "Rafael", "Anika", "Dmitri", "Sofia", "Henrik", "Priya",
          "Mateo", "Yuki", "Leila", "Oskar", "Nadia")
_LAST = ("Lindqvist", "Okafor", "Moreau", "Castellano", "Novak", "Brennan", "Takahashi", "Haddad", "Kowalski",
         "Ferreira", "Johansson", "Mensah", "Petrov", "Albers", "Quint", "Varga")
_WORDS = ("anchor", "biscuit", "candle", "dolphin", "envelope", "feather", "giraffe", "hammock", "igloo", "jigsaw",
          "kayak", "ladder", "mitten", "necklace", "octopus", "parsley", "quiver", "rucksack", "scooter", "trumpet",
          "umbrella", "volcano", "wardrobe", "yogurt", "zeppelin")


def key(rng: random.Random, taken: set[str]) -> str:
    """A fresh adjective-noun key, not in ``taken`` (added to it)."""
    while True:
        k = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        if k not in taken:
            taken.add(k)
            return k


def value(kind: str, rng: random.Random, taken: set[str]) -> str:
    """A fresh value of ``kind`` (not in ``taken``; added to it); ValueError on an unknown kind."""
    make = {"number": lambda: str(rng.randint(1_000_000, 9_999_999)),
            "name": lambda: f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            "word": lambda: rng.choice(_WORDS),
            "code": lambda: f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTUVWXZ')}-"
                            f"{rng.randint(1000, 9999)}",
            "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))}
    if kind not in make:
        raise ValueError(f"unknown needle kind {kind!r}; valid: {', '.join(KINDS)}")
    while True:
        v = make[kind]()
        if v not in taken:
            taken.add(v)
            return v


def needle(kind: str, k: str, v: str) -> str:
    """The sentence that plants value ``v`` under key ``k`` (RULER's needle template)."""
    return f"One of the special magic {PLURAL[kind]} for {k} is: {v}."


def question(kind: str, k: str) -> str:
    return f"What is the special magic {kind} for {k}?"
