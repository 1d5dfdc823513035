"""Dream inputs for the tests: a short one, and a long one that keeps a job running."""

from __future__ import annotations

import random

FRAGMENTS = [
    "The lighthouse keeper counted ships that never arrived, and the fog kept his count.",
    "Salt wind carried the smell of oranges across the harbour at night.",
    "A child drew maps of islands that moved whenever the tide turned.",
    "The keeper's lamp burned blue when the ships came close to the harbour.",
    "Oranges rolled down the stairs of the lighthouse towards the sea.",
]


def large_fragments(seed: int = 0, count: int = 64, size: int = 2000) -> list[str]:
    """The largest input allowed, over a vocabulary of 4000 made-up words."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou")
                     for _ in range(rng.randint(2, 4))) for _ in range(4000)]
    fragments = []
    for _ in range(count):
        text = ""
        while len(text) < size - 12:
            text += rng.choice(words) + " "
        fragments.append(text.strip())
    return fragments


#: Seconds of work sequentially (16 branches of the largest input), enough to
#: act on a job while it runs.
LONG = {"fragments": large_fragments(), "branches": 16, "depth": 8, "seed": 7}
