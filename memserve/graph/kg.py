"""One namespace's knowledge graph, in memory, maintained incrementally.

Nodes are phrases (normalised entity text, keyed by a hash of it) and passages (episode ``seq``). Edges:

- fact edges subject–object, weight = number of supporting (passage, triple) pairs;
- passage–phrase edges (weight 1) from each passage to the subjects and objects of its triples;
- synonymy edges between phrases whose embeddings have cosine >= ``synonym_threshold``, each phrase keeping its
  ``max_synonyms`` closest (an edge exists if either end keeps it).

The adjacency lives in plain dicts; the CSR matrix for PPR is rebuilt lazily on the first query after a change
(igraph rebuilds on every edge addition, FIELD-NOTES). Synonymy *candidates* (every pair above the threshold,
uncapped) are stored and the per-phrase cap is applied when the matrix is built: that keeps the edge set a pure
function of the current phrases, so an incrementally built graph equals a from-scratch build, also after deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from memserve.extract.normalize import normalize_phrase

from .delta import Fact, GraphDelta
from .embedding_index import EmbeddingIndex
from .ids import fact_id as make_fact_id
from .ids import phrase_id as make_phrase_id
from .ppr import PPRMatrix

EmbedFn = Callable[[list[str]], np.ndarray]


class _Triple(Protocol):
    subject: str
    predicate: str
    object: str


class _Extraction(Protocol):
    """Structural view of ``memserve.extract.types.ExtractionResult`` (the graph only reads these fields)."""

    entities: Sequence[str]
    triples: Sequence[_Triple]


@dataclass(frozen=True)
class Edge:
    kind: str  # "fact" | "passage" | "synonym"
    u: tuple[str, int]  # ("phrase", phrase_id) or ("passage", seq)
    v: tuple[str, int]
    weight: float
    predicates: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphMatrix:
    """A snapshot of the graph for PPR: node order is phrases (sorted id) then passages (sorted seq)."""

    ppr: PPRMatrix
    phrase_ids: np.ndarray  # int64, node i for i < len(phrase_ids)
    passage_seqs: np.ndarray  # int64, node len(phrase_ids) + j
    phrase_node: Mapping[int, int]
    passage_node: Mapping[int, int]


@dataclass(frozen=True)
class _PassageContent:
    phrases: dict[int, str]
    facts: dict[int, Fact]


class KnowledgeGraph:
    def __init__(
        self,
        dim: int,
        *,
        synonym_threshold: float = 0.8,
        max_synonyms: int = 100,
        min_synonym_chars: int = 3,
        link_entities: bool = False,
        normalize: Callable[[str], str] = normalize_phrase,
        fact_index_exact_max: int | None = 50_000,
    ) -> None:
        """``link_entities`` also links passages to NER entities that appear in no triple (HippoRAG 2 links only
        triple phrases). Phrases with fewer than ``min_synonym_chars`` letters/digits get no synonymy edges: very
        short strings ("us", "1") embed close to unrelated ones. Past ``fact_index_exact_max`` facts, query-time
        fact search goes through an IVF copy of the fact index (see embedding_index.py); None keeps it exact."""
        self.dim = dim
        self.synonym_threshold = synonym_threshold
        self.max_synonyms = max_synonyms
        self.min_synonym_chars = min_synonym_chars
        self.link_entities = link_entities
        self._normalize = normalize
        self._phrase_text: dict[int, str] = {}
        self._phrase_passages: dict[int, set[int]] = {}
        self._passage_phrases: dict[int, set[int]] = {}
        self._facts: dict[int, Fact] = {}
        self._fact_passages: dict[int, set[int]] = {}
        self._passage_facts: dict[int, set[int]] = {}
        self._near: dict[int, dict[int, float]] = {}  # synonymy candidates, symmetric, all above threshold
        self._phrase_index = EmbeddingIndex(dim)
        self._fact_index = EmbeddingIndex(dim, approximate_above=fact_index_exact_max)
        self._matrix: GraphMatrix | None = None
        self._matrix_variants: dict[float, tuple[GraphMatrix, GraphMatrix]] = {}
        self._density_cache: dict[int, tuple[GraphMatrix, float]] = {}

    # ----------------------------------------------------------------- reading

    @property
    def phrases(self) -> Mapping[int, str]:
        return self._phrase_text

    @property
    def facts(self) -> Mapping[int, Fact]:
        return self._facts

    @property
    def passages(self) -> frozenset[int]:
        return frozenset(self._passage_phrases)

    def passages_of_phrase(self, phrase_id: int) -> frozenset[int]:
        return frozenset(self._phrase_passages.get(phrase_id, ()))

    def passages_of_fact(self, fact_id: int) -> frozenset[int]:
        return frozenset(self._fact_passages.get(fact_id, ()))

    def phrases_of_passage(self, seq: int) -> frozenset[int]:
        return frozenset(self._passage_phrases.get(seq, ()))

    def specificity(self, phrase_id: int) -> float:
        """1 / number of passages containing the phrase (HippoRAG's node specificity)."""
        n = len(self._phrase_passages.get(phrase_id, ()))
        return 1.0 / n if n else 0.0

    def search_facts(self, query: np.ndarray, k: int) -> list[tuple[Fact, float]]:
        scores, ids = self._fact_index.search(query, k)
        return [(self._facts[int(i)], float(s)) for s, i in zip(scores, ids)]

    def phrase_vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self._phrase_index.vectors(np.asarray(ids, dtype=np.int64))

    def fact_vectors(self, ids: Sequence[int]) -> np.ndarray:
        return self._fact_index.vectors(np.asarray(ids, dtype=np.int64))

    def synonym_candidates(self) -> Iterator[tuple[int, int, float]]:
        """Every stored pair above the threshold, once, as (smaller id, larger id, cosine)."""
        for a, near in self._near.items():
            for b, sim in near.items():
                if a < b:
                    yield a, b, sim

    # ----------------------------------------------------------------- writing

    def add_passages(self, items: Iterable[tuple[int, _Extraction]], embed_fn: EmbedFn) -> GraphDelta:
        """Add (or replace) passages. Only phrases and facts new to the graph are embedded, and only new phrases
        are searched for synonyms (against all phrases, new ones included)."""
        contents: dict[int, _PassageContent] = {}
        for seq, result in items:
            if getattr(result, "error", None) is not None:
                raise ValueError(f"passage {seq}: a failed extraction cannot enter the graph (retry it first)")
            contents[int(seq)] = self._content(result)
        delta = GraphDelta()
        replaced = [seq for seq in contents if seq in self._passage_phrases]
        if replaced:
            keep_phrases = {p for c in contents.values() for p in c.phrases}
            keep_facts = {f for c in contents.values() for f in c.facts}
            self._remove(replaced, delta, keep_phrases, keep_facts)

        new_phrases: dict[int, str] = {}
        new_facts: dict[int, Fact] = {}
        for content in contents.values():
            new_phrases.update((p, t) for p, t in content.phrases.items() if p not in self._phrase_text)
            new_facts.update((f, x) for f, x in content.facts.items() if f not in self._facts)
        phrase_ids = sorted(new_phrases)
        fact_ids = sorted(new_facts)
        texts = [new_phrases[p] for p in phrase_ids] + [new_facts[f].text for f in fact_ids]
        vecs = np.asarray(embed_fn(texts), dtype=np.float32) if texts else np.zeros((0, self.dim), np.float32)
        if vecs.shape != (len(texts), self.dim):
            raise ValueError(f"embed_fn returned shape {vecs.shape}, expected ({len(texts)}, {self.dim})")
        phrase_vecs, fact_vecs = vecs[: len(phrase_ids)], vecs[len(phrase_ids) :]

        for p in phrase_ids:
            self._phrase_text[p] = new_phrases[p]
            self._phrase_passages.setdefault(p, set())
        self._phrase_index.add(np.asarray(phrase_ids, np.int64), phrase_vecs)
        for f in fact_ids:
            self._facts[f] = new_facts[f]
            self._fact_passages.setdefault(f, set())
        self._fact_index.add(np.asarray(fact_ids, np.int64), fact_vecs)
        delta.added_phrases = [(p, new_phrases[p]) for p in phrase_ids]
        delta.added_phrase_vectors = phrase_vecs
        delta.added_facts = [new_facts[f] for f in fact_ids]
        delta.added_fact_vectors = fact_vecs

        delta.added_passages = sorted(contents)
        for seq in sorted(contents):
            content = contents[seq]
            self._passage_phrases[seq] = set(content.phrases)
            self._passage_facts[seq] = set(content.facts)
            for p in sorted(content.phrases):
                self._phrase_passages[p].add(seq)
                delta.added_passage_phrases.append((seq, p))
            for f in sorted(content.facts):
                self._fact_passages[f].add(seq)
                delta.added_passage_facts.append((seq, f))

        delta.added_synonyms = self._link_synonyms(phrase_ids, phrase_vecs)
        self._matrix = None
        return delta

    def remove_passages(self, seqs: Iterable[int]) -> GraphDelta:
        """Remove passages, their edges, and every phrase and fact no longer supported by a remaining passage."""
        delta = GraphDelta()
        self._remove([int(s) for s in seqs if int(s) in self._passage_phrases], delta, set(), set())
        return delta

    @classmethod
    def restore(
        cls,
        dim: int,
        *,
        phrases: Sequence[tuple[int, str]],
        phrase_vectors: np.ndarray,
        facts: Sequence[Fact],
        fact_vectors: np.ndarray,
        passage_phrases: Iterable[tuple[int, int]],
        passage_facts: Iterable[tuple[int, int]],
        synonyms: Iterable[tuple[int, int, float]],
        passages: Iterable[int] = (),
        **options: object,
    ) -> KnowledgeGraph:
        """Rebuild from persisted rows without embedding or searching anything (start-up path).
        ``passages`` lists passages that may have no phrase at all (extraction found nothing)."""
        kg = cls(dim, **options)  # type: ignore[arg-type]
        for p, text in phrases:
            kg._phrase_text[p] = text
            kg._phrase_passages[p] = set()
        kg._phrase_index.add(np.asarray([p for p, _ in phrases], np.int64), phrase_vectors)
        for fact in facts:
            kg._facts[fact.fact_id] = fact
            kg._fact_passages[fact.fact_id] = set()
        kg._fact_index.add(np.asarray([f.fact_id for f in facts], np.int64), fact_vectors)
        for seq in passages:
            kg._passage_phrases.setdefault(int(seq), set())
            kg._passage_facts.setdefault(int(seq), set())
        for seq, p in passage_phrases:
            kg._passage_phrases.setdefault(seq, set()).add(p)
            kg._passage_facts.setdefault(seq, set())
            kg._phrase_passages[p].add(seq)
        for seq, f in passage_facts:
            kg._passage_facts.setdefault(seq, set()).add(f)
            kg._passage_phrases.setdefault(seq, set())
            kg._fact_passages[f].add(seq)
        for a, b, sim in synonyms:
            kg._near.setdefault(a, {})[b] = sim
            kg._near.setdefault(b, {})[a] = sim
        return kg

    # ----------------------------------------------------------------- PPR view

    def matrix(self, synonym_threshold: float | None = None) -> GraphMatrix:
        """The symmetric weighted adjacency for PPR, built once per change.

        A ``synonym_threshold`` above the graph's own keeps only the stronger synonymy edges (a per-query
        override, cached per value); one at or below it changes nothing, since weaker pairs were never stored.
        """
        if self._matrix is None:
            self._matrix = self._build_matrix()
        base = self._matrix
        if synonym_threshold is None or synonym_threshold <= self.synonym_threshold:
            return base
        key = round(float(synonym_threshold), 4)
        cached = self._matrix_variants.get(key)
        if cached is None or cached[0] is not base:
            cached = (base, self._build_matrix(min_synonym_similarity=key))
            self._matrix_variants[key] = cached
        return cached[1]

    def specific_phrase_density(self, max_passages: int = 3) -> float:
        """Mean number of *specific* phrases (in at most ``max_passages`` passages) per passage: how much the
        graph can tell passages apart. Entity-rich documents give ~10; chat turns, where the only recurring
        names are the speakers, well under 1. Cached until the graph changes."""
        base = self.matrix()
        cached = self._density_cache.get(max_passages)
        if cached is None or cached[0] is not base:
            if not self._passage_phrases:
                value = 0.0
            else:
                specific = sum(1 for ps in self._phrase_passages.values() if len(ps) <= max_passages for _ in ps)
                value = specific / len(self._passage_phrases)
            cached = (base, value)
            self._density_cache[max_passages] = cached
        return cached[1]

    def texts_to_embed(self, items: Iterable[tuple[int, _Extraction]]) -> list[str]:
        """Phrase and fact texts these extractions would add (not yet in the graph), so a caller can embed them
        before taking the graph's lock and hand ``add_passages`` a lookup instead of a slow encoder call."""
        out: dict[str, None] = {}
        for _, result in items:
            if getattr(result, "error", None) is not None:
                continue
            content = self._content(result)
            out.update((t, None) for p, t in content.phrases.items() if p not in self._phrase_text)
            out.update((f.text, None) for fid, f in content.facts.items() if fid not in self._facts)
        return list(out)

    def edges(self, min_synonym_similarity: float | None = None) -> Iterator[Edge]:
        """Every edge once, with canonical endpoint order (used by export and by equality tests)."""
        fact_weight: dict[tuple[int, int], float] = {}
        fact_preds: dict[tuple[int, int], list[str]] = {}
        for f, fact in self._facts.items():
            if fact.subject_id == fact.object_id:
                continue  # a self-loop carries no walk between phrases
            key = (min(fact.subject_id, fact.object_id), max(fact.subject_id, fact.object_id))
            fact_weight[key] = fact_weight.get(key, 0.0) + len(self._fact_passages[f])
            fact_preds.setdefault(key, []).append(fact.predicate)
        for (a, b), w in sorted(fact_weight.items()):
            yield Edge("fact", ("phrase", a), ("phrase", b), w, tuple(sorted(set(fact_preds[(a, b)]))))
        for seq in sorted(self._passage_phrases):
            for p in sorted(self._passage_phrases[seq]):
                yield Edge("passage", ("passage", seq), ("phrase", p), 1.0)
        for a, b, sim in self._synonym_edges():
            if min_synonym_similarity is None or sim >= min_synonym_similarity:
                yield Edge("synonym", ("phrase", a), ("phrase", b), sim)

    # ----------------------------------------------------------------- internals

    def _content(self, result: _Extraction) -> _PassageContent:
        phrases: dict[int, str] = {}
        facts: dict[int, Fact] = {}

        def phrase(text: str) -> int | None:
            norm = self._normalize(text)
            if not norm:
                return None
            pid = make_phrase_id(norm)
            phrases[pid] = norm
            return pid

        for triple in result.triples:
            s, o = phrase(triple.subject), phrase(triple.object)
            pred = self._normalize(str(triple.predicate))
            if s is None or o is None:
                continue
            fid = make_fact_id(phrases[s], pred, phrases[o])
            facts[fid] = Fact(fid, s, pred, o, f"{phrases[s]} {pred} {phrases[o]}")
        if self.link_entities:
            for entity in result.entities:
                phrase(entity)
        return _PassageContent(phrases, facts)

    def _remove(self, seqs: list[int], delta: GraphDelta, keep_phrases: set[int], keep_facts: set[int]) -> None:
        dead_phrases: list[int] = []
        dead_facts: list[int] = []
        for seq in seqs:
            for p in self._passage_phrases.pop(seq, set()):
                self._phrase_passages[p].discard(seq)
                if not self._phrase_passages[p] and p not in keep_phrases:
                    dead_phrases.append(p)
            for f in self._passage_facts.pop(seq, set()):
                self._fact_passages[f].discard(seq)
                if not self._fact_passages[f] and f not in keep_facts:
                    dead_facts.append(f)
        for p in dead_phrases:
            del self._phrase_text[p], self._phrase_passages[p]
            for other in self._near.pop(p, {}):
                self._near[other].pop(p, None)
                if not self._near[other]:
                    del self._near[other]
        for f in dead_facts:
            del self._facts[f], self._fact_passages[f]
        self._phrase_index.remove(np.asarray(dead_phrases, np.int64))
        self._fact_index.remove(np.asarray(dead_facts, np.int64))
        delta.removed_passages.extend(seqs)
        delta.removed_phrases.extend(sorted(dead_phrases))
        delta.removed_facts.extend(sorted(dead_facts))
        self._matrix = None

    def _synonym_eligible(self, text: str) -> bool:
        return sum(ch.isalnum() for ch in text) >= self.min_synonym_chars

    def _link_synonyms(self, ids: list[int], vecs: np.ndarray) -> list[tuple[int, int, float]]:
        eligible = [i for i, p in enumerate(ids) if self._synonym_eligible(self._phrase_text[p])]
        if not eligible:
            return []
        # Search slightly below the threshold, then decide each pair with one float64 dot product: FAISS's
        # batched float32 scores differ in the last bits with batch shape, and a pair on the boundary must not
        # depend on which batch found it.
        queries, hits = self._phrase_index.range_pairs(
            np.asarray([ids[i] for i in eligible], np.int64), vecs[eligible], self.synonym_threshold - 1e-3
        )
        pairs = {(min(a, b), max(a, b)) for a, b in zip(queries.tolist(), hits.tolist())}
        pairs = {(a, b) for a, b in pairs if self._synonym_eligible(self._phrase_text[a])
                 and self._synonym_eligible(self._phrase_text[b])}
        if not pairs:
            return []
        ordered = sorted(pairs)
        left = self._phrase_index.vectors(np.asarray([a for a, _ in ordered], np.int64)).astype(np.float64)
        right = self._phrase_index.vectors(np.asarray([b for _, b in ordered], np.int64)).astype(np.float64)
        sims = np.einsum("ij,ij->i", left, right)
        added: list[tuple[int, int, float]] = []
        for (a, b), sim in zip(ordered, sims.tolist()):
            if sim >= self.synonym_threshold and b not in self._near.get(a, {}):
                self._near.setdefault(a, {})[b] = sim
                self._near.setdefault(b, {})[a] = sim
                added.append((a, b, sim))
        return added

    def _synonym_edges(self) -> list[tuple[int, int, float]]:
        kept: dict[tuple[int, int], float] = {}
        for a, near in self._near.items():
            best = sorted(near.items(), key=lambda item: (-item[1], item[0]))[: self.max_synonyms]
            for b, sim in best:
                kept[(min(a, b), max(a, b))] = sim
        return sorted((a, b, s) for (a, b), s in kept.items())

    def _build_matrix(self, min_synonym_similarity: float | None = None) -> GraphMatrix:
        phrase_ids = np.array(sorted(self._phrase_text), dtype=np.int64)
        passage_seqs = np.array(sorted(self._passage_phrases), dtype=np.int64)
        phrase_node = {int(p): i for i, p in enumerate(phrase_ids)}
        offset = len(phrase_ids)
        passage_node = {int(s): offset + j for j, s in enumerate(passage_seqs)}

        def node(key: tuple[str, int]) -> int:
            return phrase_node[key[1]] if key[0] == "phrase" else passage_node[key[1]]

        rows: list[int] = []
        cols: list[int] = []
        weights: list[float] = []
        for edge in self.edges(min_synonym_similarity):
            rows.append(node(edge.u))
            cols.append(node(edge.v))
            weights.append(edge.weight)
        n = offset + len(passage_seqs)
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        # Symmetric; a phrase pair with both a fact and a synonymy edge gets the sum (duplicates are summed).
        adjacency = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                                  shape=(n, n)).tocsr()
        return GraphMatrix(PPRMatrix.from_adjacency(adjacency, dtype=np.float32), phrase_ids, passage_seqs,
                           phrase_node, passage_node)
