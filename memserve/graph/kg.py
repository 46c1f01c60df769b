"""One namespace's knowledge graph, in memory, maintained incrementally.

Nodes are phrases (normalised entity text, keyed by a hash of it) and passages (episode ``seq``). Edges:

- fact edges subject-object, weight = number of supporting (passage, triple) pairs;
- passage-phrase edges (weight 1) from each passage to the subjects and objects of its triples;
- synonymy edges between phrases whose embeddings have cosine >= ``synonym_threshold``, each phrase keeping its
  ``max_synonyms`` closest (an edge exists if either end keeps it).

Synonymy *candidates* (every pair above the threshold, uncapped) are stored; the per-phrase cap is re-applied
to the phrases each change touches, so the edge set stays a pure function of the current phrases and an
incrementally built graph equals a from-scratch build, also after deletes.

The PPR matrix is a separate snapshot (matrix.py). Edges are kept in forms that convert to arrays cheaply
(per-passage phrase arrays; fact pairs and synonymy edges in NumPy columns), so ``build_matrix`` is a handful
of vectorised steps. Concurrency contract (the server's): writers (``add_passages``, ``remove_passages``,
``install_*``) run under an exclusive lock; ``build_matrix``, ``fact_ivf_job`` and queries are pure reads that
may run together under a shared lock. Queries use the *installed* matrix, which may be one change behind.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from memserve.extract.normalize import normalize_phrase

from ..domain.graph import Fact, GraphColumns, GraphDelta
from .edge_table import EdgeTable
from .embedding_index import EmbeddingIndex, IVFJob, TrainedIVF
from .heap import release_free_heap
from .ids import fact_id as make_fact_id
from .ids import phrase_id as make_phrase_id
from .matrix import GraphMatrix, assemble
from .ragged import RaggedTable

EmbedFn = Callable[[list[str]], np.ndarray]
FACT_VECTOR_MODES = ("encode", "compose")  # how a new fact gets its vector (KnowledgeGraph ``fact_vectors``)
IVF_KINDS = ("fact", "phrase")  # the embedding indexes that switch to an IVF past a size (see embedding_index.py)
_EMPTY = np.zeros(0, np.int64)


# Read-only members (properties), so frozen dataclasses such as ExtractionResult and Triple satisfy them.
class _Triple(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def predicate(self) -> str: ...
    @property
    def object(self) -> str: ...


class _Extraction(Protocol):
    """Structural view of ``memserve.domain.extraction.ExtractionResult`` (the graph only reads these fields;
    read-only members, so frozen dataclasses match)."""

    @property
    def entities(self) -> Sequence[str]: ...
    @property
    def triples(self) -> Sequence[_Triple]: ...


@dataclass(frozen=True)
class Edge:
    kind: str  # "fact" | "passage" | "synonym"
    u: tuple[str, int]  # ("phrase", phrase_id) or ("passage", seq)
    v: tuple[str, int]
    weight: float
    predicates: tuple[str, ...] = ()


@dataclass(frozen=True)
class _PassageContent:
    phrases: dict[int, str]
    facts: dict[int, Fact]


def _i64(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).ravel()


def _key_array(m: Mapping[int, object]) -> np.ndarray:
    key_array = getattr(m, "key_array", None)  # LazyMap: no loop over the loaded keys
    return key_array() if key_array is not None else np.fromiter(m.keys(), np.int64, len(m))


def _predicates(facts: Iterable[Fact]) -> list[str]:
    """The distinct non-empty predicates of ``facts``, in first-seen order (what "compose" embeds)."""
    return list(dict.fromkeys(f.predicate for f in facts if f.predicate))


def compose_fact_vectors(subjects: np.ndarray, predicates: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Unit vectors of subject + predicate + object, row by row (float32). Rows are the three parts' unit vectors;
    an empty predicate is a zero row. A sum that cancels to zero stays zero (it then matches no query)."""
    total = np.asarray(subjects, np.float64) + np.asarray(predicates, np.float64) + np.asarray(objects, np.float64)
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _pair_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a sorted array: unique keys, group starts and group ends."""
    if len(keys) == 0:
        return _EMPTY, _EMPTY, _EMPTY
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    ends = np.append(starts[1:], len(keys))
    return keys[starts], starts, ends


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order of (a, b) sorted lexicographically and a mask of the first row of each distinct pair."""
    order = np.lexsort((b, a))
    sa, sb = a[order], b[order]
    first = np.ones(len(order), bool)
    first[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    return order, first


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
        train_fact_ivf_inline: bool = True,
        phrase_index_exact_max: int | None = None,
        train_phrase_ivf_inline: bool = True,
        fact_vectors: str = "encode",
        predicate_weight: float = 0.5,
    ) -> None:
        """``link_entities`` also links passages to NER entities that appear in no triple (HippoRAG 2 links only
        triple phrases). Phrases with fewer than ``min_synonym_chars`` letters/digits get no synonymy edges: very
        short strings ("us", "1") embed close to unrelated ones. Past ``fact_index_exact_max`` facts, query-time
        fact search goes through an IVF copy of the fact index (see embedding_index.py); None keeps it exact.
        ``train_fact_ivf_inline=False``: ``add_passages`` never trains that IVF; the owner runs
        ``fact_ivf_job()`` / ``install_fact_ivf()`` off its lock instead (search stays exact until then).
        ``phrase_index_exact_max`` / ``train_phrase_ivf_inline``: the same for the synonym search of new phrases
        (``ivf_job("phrase")``); past it, synonym candidates come from an IVF range search, approximate, so an
        incremental build no longer equals a from-scratch one exactly. None (the default) keeps it exact.
        ``fact_vectors``: "encode" embeds each new fact's text ("subject predicate object"); "compose" sums the
        unit vectors of its subject phrase, its predicate and its object phrase and normalises the sum
        (``compose_fact_vectors``), so only phrases and predicates reach the encoder: facts are ~80% of the
        tokens graph ingest would otherwise encode (README, "Graph ingest vs raw encode"). ``predicate_weight``
        scales the predicate's vector in that sum (0.5: chosen by leave-one-dataset-out on MuSiQue, 2Wiki and HotpotQA,
        evals/graph_vectors_cv.py; 1 and 2 ranked facts by their relation words over the entities the question
        names)."""
        if fact_vectors not in FACT_VECTOR_MODES:
            raise ValueError(f"fact_vectors must be one of {FACT_VECTOR_MODES}, got {fact_vectors!r}")
        self.dim = dim
        self.fact_vectors_mode = fact_vectors
        self.predicate_weight = predicate_weight
        self.synonym_threshold = synonym_threshold
        self.max_synonyms = max_synonyms
        self.min_synonym_chars = min_synonym_chars
        self.link_entities = link_entities
        self._normalize = normalize
        self._phrase_text: MutableMapping[int, str] = {}  # a LazyMap over a text blob after a restore
        self._phrase_passages: MutableMapping[int, set[int]] = {}  # LazyMaps after a restore, as below
        self._passage_phrases = RaggedTable()  # seq → sorted phrase ids, as columns (no object per passage)
        self._passage_facts = RaggedTable()  # seq → sorted fact ids
        self._facts: MutableMapping[int, Fact] = {}
        self._fact_passages: MutableMapping[int, set[int]] = {}
        self._near: MutableMapping[int, dict[int, float]] = {}  # synonymy candidates, symmetric, all above threshold
        # Fact edges per phrase pair: weight = supporting (passage, fact) pairs, refs = facts on the pair.
        self._fact_pairs = EdgeTable()
        # Synonymy edges after the cap: weight = cosine, refs = ends (1 or 2) keeping the edge.
        self._synonyms = EdgeTable()
        self._passage_edges = 0
        self._count_hist: dict[int, int] = {}  # passages per phrase (>= 1) → how many phrases have that many
        self._phrase_index = EmbeddingIndex(dim, approximate_above=phrase_index_exact_max,
                                            train_inline=train_phrase_ivf_inline)
        self._fact_index = EmbeddingIndex(dim, approximate_above=fact_index_exact_max,
                                          train_inline=train_fact_ivf_inline)
        self._version = 0
        self._matrix: GraphMatrix | None = None
        self._installed = False  # install_matrix was called: matrix() never builds from then on
        self._matrix_variants: dict[float, tuple[GraphMatrix, GraphMatrix]] = {}
        self._density_cache: dict[int, tuple[int, float]] = {}
        self._passage_array: tuple[int, np.ndarray] | None = None  # (version, sorted seqs) for has_passages

    # ----------------------------------------------------------------- reading

    @property
    def version(self) -> int:
        """Bumped by every mutation; a ``GraphMatrix`` built at this version describes the graph exactly."""
        return self._version

    @property
    def phrases(self) -> Mapping[int, str]:
        return self._phrase_text

    @property
    def facts(self) -> Mapping[int, Fact]:
        return self._facts

    @property
    def passages(self) -> frozenset[int]:
        return frozenset(self._passage_phrases)

    @property
    def passage_count(self) -> int:
        return len(self._passage_phrases)

    def has_passage(self, seq: int) -> bool:
        return seq in self._passage_phrases

    def has_passages(self, seqs: np.ndarray) -> np.ndarray:
        """``has_passage`` for many seqs at once (binary search over a sorted array cached per version)."""
        if self._passage_array is None or self._passage_array[0] != self._version:
            self._passage_array = (self._version, self._passage_phrases.key_array())
        present = self._passage_array[1]
        seqs = np.asarray(seqs, np.int64)
        pos = np.minimum(np.searchsorted(present, seqs), max(len(present) - 1, 0))
        return (present[pos] == seqs) if len(present) else np.zeros(len(seqs), bool)

    @property
    def edge_count(self) -> int:
        """As many as ``edges()`` yields, maintained (O(1))."""
        return len(self._fact_pairs) + self._passage_edges + len(self._synonyms)

    def passages_of_phrase(self, phrase_id: int) -> frozenset[int]:
        return frozenset(self._phrase_passages.get(phrase_id, ()))

    def passages_of_fact(self, fact_id: int) -> frozenset[int]:
        return frozenset(self._fact_passages.get(fact_id, ()))

    def phrases_of_passage(self, seq: int) -> frozenset[int]:
        return frozenset(self._passage_phrases.get(seq, _EMPTY).tolist())

    def specificity(self, phrase_id: int) -> float:
        """1 / number of passages containing the phrase (HippoRAG's node specificity)."""
        n = len(self._phrase_passages.get(phrase_id, ()))
        return 1.0 / n if n else 0.0

    def search_facts(self, query: np.ndarray, k: int) -> list[tuple[Fact, float]]:
        scores, ids = self._fact_index.search(query, k)
        return [(self._facts[int(i)], float(s)) for s, i in zip(scores, ids, strict=True)]

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

    def add_passages(self, items: Iterable[tuple[int, _Extraction]], embed_fn: EmbedFn, *,
                     fact_vectors: str | None = None) -> GraphDelta:
        """Add (or replace) passages. Only phrases and facts new to the graph are embedded, and only new phrases
        are searched for synonyms (against all phrases, new ones included). ``fact_vectors`` overrides the
        graph's own mode for the facts these passages add (the owner picks it per extraction source)."""
        mode = self.fact_vectors_mode if fact_vectors is None else fact_vectors
        if mode not in FACT_VECTOR_MODES:
            raise ValueError(f"fact_vectors must be one of {FACT_VECTOR_MODES}, got {mode!r}")
        contents: dict[int, _PassageContent] = {}
        for seq, result in items:
            if getattr(result, "error", None) is not None:
                raise ValueError(f"passage {seq}: a failed extraction cannot enter the graph (retry it first)")
            contents[int(seq)] = self._content(result)
        delta = GraphDelta()
        replaced = [seq for seq in contents if seq in self._passage_phrases]
        new_phrases: dict[int, str] = {}
        new_facts: dict[int, Fact] = {}
        for content in contents.values():
            new_phrases.update((p, t) for p, t in content.phrases.items() if p not in self._phrase_text)
            new_facts.update((f, x) for f, x in content.facts.items() if f not in self._facts)
        phrase_ids = sorted(new_phrases)
        fact_ids = sorted(new_facts)
        composing = mode == "compose"
        second = (_predicates(new_facts[f] for f in fact_ids) if composing
                  else [new_facts[f].text for f in fact_ids])
        texts = [new_phrases[p] for p in phrase_ids] + second
        # Embed before changing anything, so a failing or malformed embed_fn leaves the graph as it was.
        vecs = np.asarray(embed_fn(texts), dtype=np.float32) if texts else np.zeros((0, self.dim), np.float32)
        if vecs.shape != (len(texts), self.dim):
            raise ValueError(f"embed_fn returned shape {vecs.shape}, expected ({len(texts)}, {self.dim})")
        phrase_vecs, fact_vecs = vecs[: len(phrase_ids)], vecs[len(phrase_ids) :]
        if composing:  # before any change: the ends that already exist are read from the phrase index
            fact_vecs = self._composed([new_facts[f] for f in fact_ids], dict(zip(phrase_ids, phrase_vecs,
                                       strict=True)), dict(zip(second, fact_vecs, strict=True)))
        self._version += 1
        if replaced:
            keep_phrases = {p for c in contents.values() for p in c.phrases}
            keep_facts = {f for c in contents.values() for f in c.facts}
            self._remove(replaced, delta, keep_phrases, keep_facts)

        for p in phrase_ids:
            self._phrase_text[p] = new_phrases[p]
            self._phrase_passages.setdefault(p, set())
        self._phrase_index.add(np.asarray(phrase_ids, np.int64), phrase_vecs)
        for f in fact_ids:
            fact = new_facts[f]
            self._facts[f] = fact
            self._fact_passages.setdefault(f, set())
            if fact.subject_id != fact.object_id:  # a self-loop carries no walk between phrases
                self._fact_pairs.update(_pair_key(fact.subject_id, fact.object_id), refs=1)
        self._fact_index.add(np.asarray(fact_ids, np.int64), fact_vecs)
        delta.added_phrases = [(p, new_phrases[p]) for p in phrase_ids]
        delta.added_phrase_vectors = phrase_vecs
        delta.added_facts = [new_facts[f] for f in fact_ids]
        delta.added_fact_vectors = fact_vecs

        delta.added_passages = sorted(contents)
        for seq in sorted(contents):
            content = contents[seq]
            pids, fids = sorted(content.phrases), sorted(content.facts)
            self._passage_phrases[seq] = np.asarray(pids, np.int64)
            self._passage_facts[seq] = np.asarray(fids, np.int64)
            self._passage_edges += len(pids)
            for p in pids:
                self._phrase_gain(p, seq)
                delta.added_passage_phrases.append((seq, p))
            for f in fids:
                self._fact_gain(f, seq)
                delta.added_passage_facts.append((seq, f))

        delta.added_synonyms = self._link_synonyms(phrase_ids, phrase_vecs)
        return delta

    def remove_passages(self, seqs: Iterable[int]) -> GraphDelta:
        """Remove passages, their edges, and every phrase and fact no longer supported by a remaining passage."""
        delta = GraphDelta()
        gone = [int(s) for s in seqs if int(s) in self._passage_phrases]
        if gone:
            self._version += 1
            self._remove(gone, delta, set(), set())
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
        **options: Any,
    ) -> KnowledgeGraph:
        """Rebuild from persisted rows without embedding or searching anything (row-wise convenience form of
        ``restore_columns``). ``passages`` lists passages that may have no phrase at all."""
        pp = np.asarray(list(passage_phrases), np.int64).reshape(-1, 2)
        pf = np.asarray(list(passage_facts), np.int64).reshape(-1, 2)
        sy = list(synonyms)
        columns = GraphColumns(
            phrase_ids=_i64([p for p, _ in phrases]), phrase_texts=[t for _, t in phrases],
            phrase_vectors=phrase_vectors,
            fact_ids=_i64([f.fact_id for f in facts]), fact_subjects=_i64([f.subject_id for f in facts]),
            fact_predicates=[f.predicate for f in facts], fact_objects=_i64([f.object_id for f in facts]),
            fact_texts=[f.text for f in facts], fact_vectors=fact_vectors,
            passage_phrase_seqs=pp[:, 0], passage_phrase_ids=pp[:, 1],
            passage_fact_seqs=pf[:, 0], passage_fact_ids=pf[:, 1],
            synonym_a=_i64([a for a, _, _ in sy]), synonym_b=_i64([b for _, b, _ in sy]),
            synonym_similarity=np.asarray([s for _, _, s in sy], np.float64),
            passages=_i64(list(passages)),
        )
        return cls.restore_columns(dim, columns, **options)

    @classmethod
    def restore_columns(
        cls, dim: int, columns: GraphColumns, *, fact_ivf: tuple[bytes, int] | None = None,
        phrase_ivf: tuple[bytes, int] | None = None, **options: Any
    ) -> KnowledgeGraph:
        """Rebuild from persisted columns with array operations (start-up path; nothing is embedded or searched).
        ``fact_ivf`` / ``phrase_ivf``: persisted (blob, count when trained) from ``TrainedIVF``, so the IVF is
        rebuilt without k-means; a missing or unusable blob leaves that search exact (``ivf_due()``)."""
        from ._restore import fill

        kg = cls(dim, **options)
        fill(kg, columns)
        for kind, persisted in (("fact", fact_ivf), ("phrase", phrase_ivf)):
            if persisted is not None:
                kg._ivf_index(kind).restore_ivf(*persisted)
        release_free_heap()  # the grouping temporaries: ~30% of a 100k-phrase graph's RSS otherwise (heap.py)
        return kg

    # ----------------------------------------------------------------- PPR view

    def build_matrix(self) -> GraphMatrix:
        """A fresh PPR snapshot at the current ``version``: a pure read, safe beside queries (shared lock)."""
        edge_seqs, edge_phrases = self._passage_phrases.rows()
        fa, fb, fw = self._fact_pairs.arrays()
        sa, sb, sw = self._synonyms.arrays()
        matrix = assemble(
            version=self._version,
            phrase_ids=np.sort(_key_array(self._phrase_text)),
            passage_seqs=self._passage_phrases.key_array(),
            fact_a=fa, fact_b=fb, fact_weight=fw,
            passage_edge_seq=edge_seqs, passage_edge_phrase=edge_phrases,
            synonym_a=sa, synonym_b=sb, synonym_weight=sw,
        )
        release_free_heap()  # the CSR assembly's temporaries (heap.py); ~ms, off the query path (the worker)
        return matrix

    def install_matrix(self, matrix: GraphMatrix) -> bool:
        """Make ``matrix`` the one queries use, if it is current (exclusive lock; O(1)). False if stale."""
        if matrix.version != self._version:
            return False
        self._matrix = matrix
        self._installed = True
        return True

    def matrix_current(self) -> bool:
        """An installed (or lazily built) matrix describes the graph as it is now."""
        return self._matrix is not None and self._matrix.version == self._version

    def matrix(self, synonym_threshold: float | None = None) -> GraphMatrix:
        """The installed PPR snapshot (possibly older than the graph). Never builds once a matrix has been
        installed; a graph whose owner never installs one builds lazily on the first call after a change.

        A ``synonym_threshold`` above the graph's own keeps only the stronger synonymy edges (a per-query
        override, cached per value); one at or below it changes nothing, since weaker pairs were never stored.
        """
        base = self._matrix
        if base is None or (not self._installed and base.version != self._version):
            base = self._matrix = self.build_matrix()
        if synonym_threshold is None or synonym_threshold <= self.synonym_threshold:
            return base
        key = round(float(synonym_threshold), 4)
        cached = self._matrix_variants.get(key)
        if cached is None or cached[0] is not base:
            cached = (base, base.with_min_synonym_similarity(key))
            self._matrix_variants[key] = cached
        return cached[1]

    def specific_phrase_density(self, max_passages: int = 3) -> float:
        """Mean number of *specific* phrases (in at most ``max_passages`` passages) per passage: how much the
        graph can tell passages apart. Entity-rich documents give ~10; chat turns, where the only recurring
        names are the speakers, well under 1. From a maintained histogram, cached per version."""
        cached = self._density_cache.get(max_passages)
        if cached is None or cached[0] != self._version:
            n = len(self._passage_phrases)
            specific = sum(c * k for c, k in self._count_hist.items() if c <= max_passages)
            cached = (self._version, specific / n if n else 0.0)
            self._density_cache[max_passages] = cached
        return cached[1]

    # ----------------------------------------------------------------- fact and phrase IVFs, off the lock

    def _ivf_index(self, kind: str) -> EmbeddingIndex:
        if kind == "fact":
            return self._fact_index
        if kind == "phrase":
            return self._phrase_index
        raise ValueError(f"unknown index kind {kind!r}; expected one of {IVF_KINDS}")

    def ivf_due(self) -> list[str]:
        """The kinds (``IVF_KINDS``) whose IVF is due: past their exact maximum and untrained or outgrown."""
        return [kind for kind in IVF_KINDS if self._ivf_index(kind).needs_ivf()]

    def ivf_job(self, kind: str) -> IVFJob | None:
        """Snapshot for training the ``kind`` IVF (a pure read; shared lock), or None when none is due.
        Run ``job.run()`` with no lock held, then ``install_ivf`` under the exclusive lock."""
        return self._ivf_index(kind).ivf_job()

    def install_ivf(self, kind: str, trained: TrainedIVF) -> bool:
        """Exclusive lock. Catches up with vectors added/removed since the snapshot (O(changes)); no k-means.
        Until then the search was exact, so nothing added during the training is searched any less."""
        return self._ivf_index(kind).install_ivf(trained)

    def search_approximate(self, kind: str) -> bool:
        return self._ivf_index(kind).approximate

    def fact_index_needs_training(self) -> bool:
        return self._fact_index.needs_ivf()

    def fact_ivf_job(self) -> IVFJob | None:
        return self.ivf_job("fact")

    def install_fact_ivf(self, trained: TrainedIVF) -> bool:
        return self.install_ivf("fact", trained)

    @property
    def fact_search_approximate(self) -> bool:
        return self.search_approximate("fact")

    def texts_to_embed(self, items: Iterable[tuple[int, _Extraction]], *, fact_vectors: str | None = None) -> list[str]:
        """Phrase and fact texts (predicates, when composing) these extractions would add (not yet in the graph),
        so a caller can embed them before taking the graph's lock and hand ``add_passages`` a lookup instead of a
        slow encoder call. ``fact_vectors``: as for ``add_passages``."""
        composing = (self.fact_vectors_mode if fact_vectors is None else fact_vectors) == "compose"
        out: dict[str, None] = {}
        for _, result in items:
            if getattr(result, "error", None) is not None:
                continue
            content = self._content(result)
            out.update((t, None) for p, t in content.phrases.items() if p not in self._phrase_text)
            new_facts = [f for fid, f in content.facts.items() if fid not in self._facts]
            if composing:
                out.update((t, None) for t in _predicates(new_facts))
            else:
                out.update((f.text, None) for f in new_facts)
        return list(out)

    def new_phrases(self, result: _Extraction) -> list[str]:
        """The normalised phrases of one extraction that are not in the graph yet (what ``add_passages`` would
        embed for it), so a caller can give them vectors of its own (engine/graph_service.py, "spans")."""
        return [t for p, t in self._content(result).phrases.items() if p not in self._phrase_text]

    def edges(self, min_synonym_similarity: float | None = None) -> Iterator[Edge]:
        """Every edge once, with canonical endpoint order (used by export and by equality tests). Computed from
        the primary structures (facts, passages, synonymy candidates), independently of the edge tables."""
        fact_weight: dict[tuple[int, int], float] = {}
        fact_preds: dict[tuple[int, int], list[str]] = {}
        for f, fact in self._facts.items():
            if fact.subject_id == fact.object_id:
                continue  # a self-loop carries no walk between phrases
            key = _pair_key(fact.subject_id, fact.object_id)
            fact_weight[key] = fact_weight.get(key, 0.0) + len(self._fact_passages[f])
            fact_preds.setdefault(key, []).append(fact.predicate)
        for (a, b), w in sorted(fact_weight.items()):
            yield Edge("fact", ("phrase", a), ("phrase", b), w, tuple(sorted(set(fact_preds[(a, b)]))))
        edge_seqs, edge_phrases = self._passage_phrases.rows()
        for seq, p in zip(edge_seqs.tolist(), edge_phrases.tolist(), strict=True):
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

    def _count_changed(self, old: int, new: int) -> None:
        if old:
            left = self._count_hist[old] - 1
            if left:
                self._count_hist[old] = left
            else:
                del self._count_hist[old]
        if new:
            self._count_hist[new] = self._count_hist.get(new, 0) + 1

    def _phrase_gain(self, p: int, seq: int) -> None:
        s = self._phrase_passages[p]
        if seq not in s:
            s.add(seq)
            self._count_changed(len(s) - 1, len(s))

    def _fact_gain(self, f: int, seq: int) -> None:
        s = self._fact_passages[f]
        if seq not in s:
            s.add(seq)
            fact = self._facts[f]
            if fact.subject_id != fact.object_id:
                self._fact_pairs.update(_pair_key(fact.subject_id, fact.object_id), refs=0, weight_delta=1.0)

    def _remove(self, seqs: list[int], delta: GraphDelta, keep_phrases: set[int], keep_facts: set[int]) -> None:
        dead_phrases: list[int] = []
        dead_facts: list[int] = []
        for seq in seqs:
            pids = self._passage_phrases.pop(seq, _EMPTY).tolist()
            self._passage_edges -= len(pids)
            for p in pids:
                s = self._phrase_passages[p]
                s.discard(seq)
                self._count_changed(len(s) + 1, len(s))
                if not s and p not in keep_phrases:
                    dead_phrases.append(p)
            for f in self._passage_facts.pop(seq, _EMPTY).tolist():
                self._fact_passages[f].discard(seq)
                fact = self._facts[f]
                if fact.subject_id != fact.object_id:
                    self._fact_pairs.update(_pair_key(fact.subject_id, fact.object_id), refs=0, weight_delta=-1.0)
                if not self._fact_passages[f] and f not in keep_facts:
                    dead_facts.append(f)
        touched = set(dead_phrases)
        for p in dead_phrases:
            touched.update(self._near.get(p, ()))
        before = {x: self._top_synonyms(x) for x in touched}
        for p in dead_phrases:
            del self._phrase_text[p], self._phrase_passages[p]
            for other in self._near.pop(p, {}):
                self._near[other].pop(p, None)
                if not self._near[other]:
                    del self._near[other]
        self._apply_synonym_caps(before)
        for f in dead_facts:
            fact = self._facts.pop(f)
            del self._fact_passages[f]
            if fact.subject_id != fact.object_id:
                self._fact_pairs.update(_pair_key(fact.subject_id, fact.object_id), refs=-1)
        self._phrase_index.remove(np.asarray(dead_phrases, np.int64))
        self._fact_index.remove(np.asarray(dead_facts, np.int64))
        delta.removed_passages.extend(seqs)
        delta.removed_phrases.extend(sorted(dead_phrases))
        delta.removed_facts.extend(sorted(dead_facts))

    def _composed(self, facts: Sequence[Fact], new_phrase_vecs: Mapping[int, np.ndarray],
                  predicate_vecs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Composed vectors of ``facts`` (``fact_vectors="compose"``): their ends from this batch's new phrases
        or, for phrases already in the graph, from the phrase index."""
        if not facts:
            return np.zeros((0, self.dim), np.float32)
        ends = np.asarray([p for f in facts for p in (f.subject_id, f.object_id)], np.int64)
        old = np.unique(ends[[int(p) not in new_phrase_vecs for p in ends.tolist()]])
        known = dict(zip(old.tolist(), self._phrase_index.vectors(old), strict=True))
        known.update(new_phrase_vecs)
        zero = np.zeros(self.dim, np.float32)
        return compose_fact_vectors(np.stack([known[f.subject_id] for f in facts]),
                                    self.predicate_weight * np.stack([predicate_vecs.get(f.predicate, zero)
                                                                      for f in facts]),
                                    np.stack([known[f.object_id] for f in facts]))

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
        pairs = {(min(a, b), max(a, b)) for a, b in zip(queries.tolist(), hits.tolist(), strict=True)}
        pairs = {(a, b) for a, b in pairs if self._synonym_eligible(self._phrase_text[a])
                 and self._synonym_eligible(self._phrase_text[b])}
        if not pairs:
            return []
        ordered = sorted(pairs)
        left = self._phrase_index.vectors(np.asarray([a for a, _ in ordered], np.int64)).astype(np.float64)
        right = self._phrase_index.vectors(np.asarray([b for _, b in ordered], np.int64)).astype(np.float64)
        sims = np.einsum("ij,ij->i", left, right)
        added = [(a, b, sim) for (a, b), sim in zip(ordered, sims.tolist(), strict=True)
                 if sim >= self.synonym_threshold and b not in self._near.get(a, {})]
        before = {x: self._top_synonyms(x) for a, b, _ in added for x in (a, b)}
        for a, b, sim in added:
            self._near.setdefault(a, {})[b] = sim
            self._near.setdefault(b, {})[a] = sim
        self._apply_synonym_caps(before)
        return added

    def _top_synonyms(self, a: int) -> list[int]:
        """The candidates phrase ``a`` keeps: its ``max_synonyms`` most similar (ties: smaller id first)."""
        near = self._near.get(a)
        if not near:
            return []
        if len(near) <= self.max_synonyms:
            return list(near)
        return [b for b, _ in heapq.nsmallest(self.max_synonyms, near.items(), key=lambda item: (-item[1], item[0]))]

    def _apply_synonym_caps(self, before: Mapping[int, list[int]]) -> None:
        """Update the synonymy edge table for phrases whose candidates changed (``before``: their old picks)."""
        for x, old in before.items():
            was, now = set(old), set(self._top_synonyms(x))
            for y in was - now:
                self._synonyms.update(_pair_key(x, y), refs=-1)
            for y in now - was:
                self._synonyms.update(_pair_key(x, y), refs=1, weight=self._near[x][y])

    def _synonym_edges(self) -> list[tuple[int, int, float]]:
        """Reference form of the cap, from the candidates alone (``edges()``; tests compare the edge table)."""
        kept: dict[tuple[int, int], float] = {}
        for a, near in self._near.items():
            best = sorted(near.items(), key=lambda item: (-item[1], item[0]))[: self.max_synonyms]
            for b, sim in best:
                kept[(min(a, b), max(a, b))] = sim
        return sorted((a, b, s) for (a, b), s in kept.items())
