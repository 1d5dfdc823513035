"""The dream computation's formulas and edge cases (the HTTP behaviour is in test_dreams)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from lukhas_dreams import compute
from support.dream_inputs import FRAGMENTS, large_fragments


def test_same_input_same_dream_and_seeds_differ():
    first = compute.dream(FRAGMENTS, branches=3, depth=2, seed=42)
    assert first == compute.dream(FRAGMENTS, branches=3, depth=2, seed=42)
    assert first != compute.dream(FRAGMENTS, branches=3, depth=2, seed=43)
    # Branches of one dream differ from each other: each has its own RNG.
    assert len({branch["narrative"] for branch in first["branches"]}) == 3


def test_dream_is_independent_of_the_process_and_its_hash_seed():
    script = ("import json, sys; from lukhas_dreams import compute; "
              "print(json.dumps(compute.dream(json.loads(sys.argv[1]), 4, 3, 9)))")
    runs = [
        json.loads(subprocess.run(
            [sys.executable, "-c", script, json.dumps(FRAGMENTS)], capture_output=True, text=True,
            check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed}, timeout=60).stdout)
        for hash_seed in ("1", "2")
    ]
    assert runs[0] == runs[1] == compute.dream(FRAGMENTS, 4, 3, 9)


@pytest.mark.parametrize("depth", [1, 4, 8])
def test_each_branch_tells_depth_times_four_sentences(depth):
    result = compute.dream(FRAGMENTS, branches=2, depth=depth, seed=1)
    for branch in result["branches"]:
        assert branch["narrative"].count(".") == depth * 4
        assert 0.0 <= branch["coherence"] <= 1.0
        assert 1 <= len(branch["themes"]) <= 5


def test_themes_are_words_of_the_fragments_and_coherence_is_the_branch_mean():
    result = compute.dream(FRAGMENTS, branches=4, depth=3, seed=5)
    words = set(" ".join(FRAGMENTS).lower().replace(",", " ").replace(".", " ").split())
    assert set(result["themes"]) <= words and 1 <= len(result["themes"]) <= 8
    assert not {"the", "and", "of"} & set(result["themes"])  # stop words carry no theme
    mean = sum(b["coherence"] for b in result["branches"]) / 4
    assert result["coherence"] == round(mean, 6)
    # The branches' first themes rank first overall (a branch's k-th of m themes scores m - k).
    assert result["themes"][0] in {b["themes"][0] for b in result["branches"]}


def test_narrative_walks_co_occurring_words():
    corpus = compute.prepare(["alpha beta gamma delta", "epsilon zeta eta theta"])
    narrative = compute.dream_branch(corpus, depth=2, seed=3, branch=0)["narrative"].lower()
    for sentence in narrative.rstrip(".").split(". "):
        words = sentence.split()
        # Consecutive words co-occur in one fragment: a walk never jumps between
        # the two fragments, whose words share no window (no dead ends here).
        assert len({w in {"alpha", "beta", "gamma", "delta"} for w in words}) == 1, sentence


def _total(similarity, path):
    return sum(similarity[a][b] for a, b in zip(path, path[1:], strict=False))


def test_ordering_improves_on_greedy_by_local_search():
    # Points on a line, similarity falling with distance: the best path visits
    # them in order (1, 0, 2, 3); nearest-neighbour from 0 gives (0, 2, 1, 3).
    x = [3, 0, 4, 10]
    similarity = [[1 - abs(a - b) / 10 for b in x] for a in x]
    path = compute._order(similarity)
    assert sorted(path) == [0, 1, 2, 3]
    assert _total(similarity, path) > _total(similarity, [0, 2, 1, 3])
    assert _total(similarity, path) == pytest.approx(2.0)


@pytest.mark.parametrize("fragments", [["!!!", "…"], ["a the of", "and"], ["word word word"]])
def test_degenerate_fragments_still_dream(fragments):
    result = compute.dream(fragments, branches=2, depth=1, seed=0)
    assert len(result["branches"]) == 2
    for branch in result["branches"]:
        assert 0.0 <= branch["coherence"] <= 1.0
    if fragments == ["!!!", "…"]:  # no word at all: empty narratives, documented
        assert result["branches"][0] == {"narrative": "", "themes": [], "coherence": 0.0}
    else:
        assert result["branches"][0]["narrative"]


def test_work_grows_with_depth_and_input():
    small = compute.prepare(FRAGMENTS)
    large = compute.prepare(large_fragments(count=16, size=1000))
    assert len(large.terms) > len(small.terms) * 10
    assert len(large.links) > len(small.links)
