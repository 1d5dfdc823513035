"""The dream computation: pure, deterministic and CPU-bound (formulas in the README).

A job analyses its fragments once (`prepare`: tokens, TF-IDF weights, a term
co-occurrence graph), then dreams each branch independently
(`dream_branch`: weighted walks over the graph, ordered for coherence), then
merges the branches (`combine`). A branch depends only on the corpus, the
depth, the seed and its own index, never on the process or the order branches
run in: nothing depends on set order or `hash()`, and each branch draws
from its own RNG. So the sequential and the parallel engines give identical
dreams.

Standard library only: this module is what worker processes import.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import Any

__all__ = ["Corpus", "combine", "dream", "dream_branch", "prepare"]

WINDOW = 4  # tokens within this distance co-occur
NEIGHBOURS = 32  # strongest co-occurring terms kept per term
SPREAD = 0.5  # share of a term's meaning passed on along its links, per hop
HOPS = 2
SENTENCES_PER_DEPTH = 4
WORDS = (6, 12)  # a sentence's length in words, drawn per sentence
BRANCH_THEMES = 5
DREAM_THEMES = 8

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_STOP = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself no nor not now of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves
""".split())


@dataclass(frozen=True)
class Corpus:
    """What every branch needs, derived once per job (once per worker process by
    the parallel engine, see `branch_process`); flat tuples.

    Terms are sorted; `cumulative` holds the running sums of `weights` for
    sampling; each term's links (co-occurring terms, strongest first) form one row.
    """

    terms: tuple[str, ...]
    weights: tuple[float, ...]
    rarity: tuple[float, ...]
    cumulative: tuple[float, ...]
    # The graph in compressed rows: term i's links are [offsets[i], offsets[i+1]).
    offsets: tuple[int, ...]
    links: tuple[int, ...]
    link_counts: tuple[int, ...]
    link_cumulative: tuple[float, ...]  # running sums, afresh in each row

    def neighbours(self, term: int) -> range:
        return range(self.offsets[term], self.offsets[term + 1])


def _tokens(text: str, keep_stop_words: bool) -> list[str]:
    words = _WORD.findall(text.lower())
    if keep_stop_words:
        return words
    return [w for w in words if len(w) >= 2 and w not in _STOP]


def prepare(fragments: Sequence[str]) -> Corpus:
    """Tokenise fragments, weigh terms by TF-IDF and build their co-occurrence graph.

    Fragments made only of stop words still dream: then every word counts.
    """
    documents = [_tokens(text, keep_stop_words=False) for text in fragments]
    if not any(documents):
        documents = [_tokens(text, keep_stop_words=True) for text in fragments]
    terms = tuple(sorted({term for document in documents for term in document}))
    index = {term: i for i, term in enumerate(terms)}
    n = len(documents)
    document_frequency = Counter(term for document in documents for term in dict.fromkeys(document))
    idf = {term: math.log((1 + n) / (1 + df)) + 1 for term, df in document_frequency.items()}
    weights = [0.0] * len(terms)
    pairs: Counter[tuple[int, int]] = Counter()
    for document in documents:
        for term, count in Counter(document).items():
            weights[index[term]] += count / len(document) * idf[term]
        ids = [index[term] for term in document]
        for offset in range(1, WINDOW + 1):
            pairs.update(zip(ids, ids[offset:], strict=False))
    edges: list[dict[int, int]] = [{} for _ in terms]
    for (a, b), count in pairs.items():
        if a != b:
            edges[a][b] = edges[a].get(b, 0) + count
            edges[b][a] = edges[b].get(a, 0) + count
    offsets: list[int] = [0]
    links: list[int] = []
    link_counts: list[int] = []
    link_cumulative: list[float] = []
    for row in edges:
        # Stable: equally strong links keep their first-seen order, the same in any process.
        strongest = sorted(row.items(), key=itemgetter(1), reverse=True)[:NEIGHBOURS]
        links += [b for b, _ in strongest]
        link_counts += [count for _, count in strongest]
        # A walk prefers strong links to rarer terms.
        link_cumulative += accumulate(count * idf[terms[b]] for b, count in strongest)
        offsets.append(len(links))
    return Corpus(terms, tuple(weights), tuple(idf[term] for term in terms),
                  tuple(accumulate(weights)), tuple(offsets), tuple(links), tuple(link_counts),
                  tuple(link_cumulative))


def _rng(seed: int, branch: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{branch}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _pick(rng: random.Random, cumulative: Sequence[float], lo: int, hi: int) -> int:
    """An index in [lo, hi) drawn in proportion to the increments of `cumulative`,
    whose running sums start afresh at `lo`."""
    return bisect_right(cumulative, rng.random() * cumulative[hi - 1], lo, hi - 1)


def _sentence(corpus: Corpus, rng: random.Random) -> list[int]:
    """A weighted walk: a TF-IDF-sampled start, then co-occurring terms."""
    length, size = rng.randint(*WORDS), len(corpus.terms)
    walk = [_pick(rng, corpus.cumulative, 0, size)]
    while len(walk) < length:
        row = corpus.neighbours(walk[-1])
        if row:
            walk.append(corpus.links[_pick(rng, corpus.link_cumulative, row.start, row.stop)])
        else:  # a dead end: start again from a weighted term
            walk.append(_pick(rng, corpus.cumulative, 0, size))
    return walk


def _expansion(corpus: Corpus, term: int) -> dict[int, float]:
    """A term's meaning as its weight spread over the co-occurrence graph: itself
    1, its neighbours `SPREAD` × their share of its links, theirs `SPREAD²` × …,
    each scaled by the term's IDF-like rarity, so sentences about the same
    things are similar without sharing words and common words weigh little."""
    expansion: dict[int, float] = {term: 1.0}
    frontier = {term: 1.0}
    for _ in range(HOPS):
        reached: dict[int, float] = {}
        for source, mass in frontier.items():
            row = corpus.neighbours(source)
            total = sum(corpus.link_counts[row.start:row.stop])
            for k in row:
                neighbour = corpus.links[k]
                reached[neighbour] = (reached.get(neighbour, 0.0)
                                      + SPREAD * mass * corpus.link_counts[k] / total)
        for target, mass in reached.items():
            expansion[target] = expansion.get(target, 0.0) + mass
        frontier = reached
    return {t: mass * corpus.rarity[t] for t, mass in expansion.items()}


def _vector(expansions: dict[int, dict[int, float]], sentence: list[int]) -> dict[int, float]:
    vector: dict[int, float] = {}
    for term in sentence:
        for target, value in expansions[term].items():
            vector[target] = vector.get(target, 0.0) + value
    return vector


def _unit(vector: dict[int, float]) -> dict[int, float]:
    norm = math.sqrt(sum(v * v for v in vector.values()))
    return {t: v / norm for t, v in vector.items()} if norm else vector


def _cosine(a: dict[int, float], b: dict[int, float]) -> float:
    """Of unit vectors; non-negative entries, so in [0, 1]."""
    if len(a) > len(b):
        a, b = b, a
    return min(1.0, sum(value * b.get(term, 0.0) for term, value in a.items()))


def _order(similarity: list[list[float]]) -> list[int]:
    """A path through all sentences with high adjacent similarity.

    From every sentence in turn: greedy nearest neighbour, then 2-opt
    reversals while one gains (at most n passes). The best path wins (ties:
    the earlier start). Multi-start local search: the work is quadratic in n
    per start, on an n × n matrix that stays in cache.
    """
    n = len(similarity)
    best_path, best_total = list(range(n)), -1.0
    for start in range(n):
        path = _two_opt(similarity, _greedy(similarity, start))
        total = sum(similarity[a][b] for a, b in zip(path, path[1:], strict=False))
        if total > best_total + 1e-12:
            best_path, best_total = path, total
    return best_path


def _greedy(similarity: list[list[float]], start: int) -> list[int]:
    path, left = [start], [j for j in range(len(similarity)) if j != start]
    while left:
        row = similarity[path[-1]]
        nearest = max(left, key=lambda j: (row[j], -j))
        path.append(nearest)
        left.remove(nearest)
    return path


def _two_opt(similarity: list[list[float]], path: list[int]) -> list[int]:
    n = len(path)

    def link(i: int, j: int) -> float:  # similarity across path[i]–path[j], 0 off the ends
        return similarity[path[i]][path[j]] if 0 <= i < n and 0 <= j < n else 0.0

    for _ in range(n):
        improved = False
        for i in range(n - 1):
            for j in range(i + 1, n):
                # Reversing path[i..j] replaces links (i-1, i) and (j, j+1).
                if link(i - 1, j) + link(i, j + 1) > link(i - 1, i) + link(j, j + 1) + 1e-12:
                    path[i:j + 1] = path[i:j + 1][::-1]
                    improved = True
        if not improved:
            break
    return path


def _render(corpus: Corpus, sentence: list[int]) -> str:
    words = [corpus.terms[t] for k, t in enumerate(sentence) if k == 0 or t != sentence[k - 1]]
    text = " ".join(words)
    return text[:1].upper() + text[1:] + "."


def _top(scores: dict[str, float], k: int) -> list[str]:
    return [term for term, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]]


def dream_branch(corpus: Corpus, depth: int, seed: int, branch: int) -> dict[str, Any]:
    """One branch: ``{"narrative", "themes", "coherence"}``.

    `depth × 4` sentences from the branch's own RNG (seeded from `seed` and
    `branch`), ordered for adjacent similarity. Pure and picklable by
    reference, so it can run in any worker process.
    """
    if not corpus.terms:
        return {"narrative": "", "themes": [], "coherence": 0.0}
    rng = _rng(seed, branch)
    sentences = [_sentence(corpus, rng) for _ in range(depth * SENTENCES_PER_DEPTH)]
    expansions: dict[int, dict[int, float]] = {}
    for sentence in sentences:
        for term in sentence:
            if term not in expansions:
                expansions[term] = _expansion(corpus, term)
    vectors = [_unit(_vector(expansions, sentence)) for sentence in sentences]
    n = len(vectors)
    similarity = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            similarity[i][j] = similarity[j][i] = _cosine(vectors[i], vectors[j])
    path = _order(similarity)
    adjacent = [similarity[a][b] for a, b in zip(path, path[1:], strict=False)]
    coherence = sum(adjacent) / len(adjacent) if adjacent else 1.0
    scores: dict[str, float] = {}
    for sentence in sentences:
        for term in sentence:
            name = corpus.terms[term]
            scores[name] = scores.get(name, 0) + corpus.weights[term]
    return {
        "narrative": " ".join(_render(corpus, sentences[i]) for i in path),
        "themes": _top(scores, BRANCH_THEMES),
        "coherence": round(coherence, 6),
    }


def combine(branches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The dream: its branches, the themes they share most, their mean coherence.

    A branch's k-th theme (of m) scores m − k; themes rank by total score.
    """
    scores: dict[str, float] = {}
    for branch in branches:
        themes = branch["themes"]
        for rank, theme in enumerate(themes):
            scores[theme] = scores.get(theme, 0.0) + len(themes) - rank
    coherence = sum(b["coherence"] for b in branches) / len(branches) if branches else 0.0
    return {"branches": list(branches), "themes": _top(scores, DREAM_THEMES),
            "coherence": round(coherence, 6)}


def dream(fragments: Sequence[str], branches: int, depth: int, seed: int) -> dict[str, Any]:
    """The sequential reference: prepare, every branch in order, combine."""
    corpus = prepare(fragments)
    return combine([dream_branch(corpus, depth, seed, branch) for branch in range(branches)])
