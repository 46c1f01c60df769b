"""The knowledge graph inside the server: background extraction, incremental graph updates, retrieval.

Write path: the episode and its extraction job (plus any client-supplied extraction) commit together; a
worker then claims jobs in seq order, extracts what has no stored extraction, embeds the new phrases and
facts outside any lock, and commits graph delta + extraction + "job done" in one transaction. A crash at
any point leaves jobs 'pending' or 'running' (reset at start-up), so extraction resumes where it stopped.

Locks (docs/CONCURRENCY.md): each namespace's graph has a readers-writer lock. Queries, stats and the
matrix build read under it, together; add_passages / remove_passages / installing a new PPR matrix take it
alone, briefly. Lock order is always: DuckDB write transaction, then the graph lock. Nothing slow happens
under the graph lock: extraction and embedding run before it is taken, and the LLM fact filter of a query
runs between two read sections (a reader that waits for the network would hold back every writer).

The PPR matrix is derived and rebuilt by the worker after each change, off the query path: a query uses the
newest installed matrix, which may be one batch behind the graph (passages not in it yet rank by their
dense prior, like passages still waiting for extraction).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..config import Settings
from ..embed.spans import TokenVectors, span_vector
from ..extract import ExtractionResult, Extractor, OfflineExtractor, clean_triples, normalize_phrase
from ..graph import export as graph_export
from ..graph.kg import KnowledgeGraph
from ..graph.restore import restore_graph
from ..store import embedding_cache_repo, episodes_repo, extractions_repo, graph_repo
from ..store.db import Database
from ..types import Episode, EpisodeIn, QueryMode
from .background import Settled, Worker
from .graph_retrieval import (
    FactFilter,
    GraphParams,
    GraphResult,
    HybridParams,
    candidate_facts,
    fused_retrieve,
    graph_retrieve,
    hybrid_retrieve,
)
from .rwlock import RWLock
from .token_stash import TokenStash

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
CLIENT_SOURCE = "client"
OFFLINE_SOURCE = "offline"  # the offline extractors' names start with it ("offline-regex-v2")


def make_extractor(settings: Settings, llm) -> Extractor | None:
    if settings.extractor == "none":
        return None
    if settings.extractor == "llm" or (settings.extractor == "auto" and llm is not None):
        from ..extract import LLMOpenIEExtractor

        return LLMOpenIEExtractor(llm)
    return OfflineExtractor()


def vector_mode(setting: str, source: str) -> str:
    """How the graph gives vectors to what ``source`` extracted (an extractor's name, or "client"):
    ``graph_vectors`` itself, or for "auto": "spans" for the offline extractor's passages, "encode" for an LLM's
    (the server's or the client's). Offline extraction is fast, so encoding phrase and fact strings was most of
    graph ingest, and spans remove it with recall up on MuSiQue and HotpotQA and level on 2Wiki; an LLM takes
    seconds per passage, so encoding costs little beside it, and its triples lost 4.2 points of R@5 on MuSiQue when
    composed (README, "Graph ingest vs raw encode")."""
    if setting != "auto":
        return setting
    return "spans" if source.startswith(OFFLINE_SOURCE) else "encode"


def _fact_mode(mode: str) -> str:
    return "encode" if mode == "encode" else "compose"


def job_stats(jobs: Mapping[str, int]) -> dict[str, int]:
    """GetStats' view of a namespace's extraction queue (``graph_repo.job_counts``)."""
    return {"extraction_backlog": int(jobs.get("pending", 0) + jobs.get("running", 0)),
            "extraction_failed": int(jobs.get("failed", 0))}


def client_extraction(ep: EpisodeIn) -> ExtractionResult | None:
    if ep.extraction is None:
        return None
    raw = [[t.subject, t.predicate, t.object] for t in ep.extraction.triples]
    triples, dropped = clean_triples(raw)
    return ExtractionResult(entities=tuple(ep.extraction.entities), triples=tuple(triples), dropped_triples=dropped)


class GraphService:
    def __init__(self, settings: Settings, db: Database, embed: Callable[[list[str]], np.ndarray], dim: int,
                 llm=None, model: str | None = None,
                 phrase_tokens: Callable[[list[str]], list[np.ndarray]] | None = None) -> None:
        """``model``: the embedder's name, the key of the shared phrase/fact vector cache (None: no cache).
        ``phrase_tokens``: the embedder's ``phrase_token_ids`` (embed/spans.py), when it returns token vectors;
        with ``graph_vectors = "spans"`` new phrases are then pooled from their episode's tokens (``token_stash``,
        filled by the write path) instead of encoded."""
        self._settings = settings
        self._model = model
        self.extractor = make_extractor(settings, llm)
        offline = isinstance(self.extractor, OfflineExtractor)
        # Would any passage get span-pooled phrases? Explicit spans, or auto with the offline extractor.
        spans = settings.graph_vectors == "spans" or (settings.graph_vectors == "auto" and offline)
        self._phrase_tokens = phrase_tokens if spans else None
        self.token_stash = (TokenStash(settings.graph_token_stash_mb * 1024 * 1024)
                            if self._phrase_tokens is not None else None)
        self.span_vectors = 0  # new phrases given a vector pooled from their episode's tokens (not encoded)
        self.embedding_cache_hits = 0  # phrase/fact strings read from the cache instead of encoded
        self.encoded_texts = 0  # phrase/fact/predicate strings the encoder was asked for
        self.extractor_contract_violations = 0  # extract() calls that did not return one result per text
        self._db = db
        self._embed = embed
        self._dim = dim
        self._query_extractor = OfflineExtractor()
        self._graphs: dict[str, KnowledgeGraph] = {}
        self._locks: dict[str, RWLock] = {}
        self._registry = threading.Lock()
        self._worker = Worker("extract", self._process, threads=settings.background_threads)
        # Facts / phrases past which fact search / the synonym search of new phrases use an IVF (trained by the
        # worker, persisted; see _refresh_ivfs).
        self.fact_index_exact_max = 50_000
        self.phrase_index_exact_max = 50_000
        self._fact_filter_factory: Callable[[str], FactFilter] | None = None
        if llm is not None:
            from .fact_filter import llm_fact_filter

            self._fact_filter_factory = lambda query: llm_fact_filter(llm, query)

    @property
    def extractor_name(self) -> str:
        return self.extractor.name if self.extractor is not None else "none"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def _graph_options(self) -> dict[str, object]:
        """KnowledgeGraph settings, the same for a new graph and one loaded from DuckDB."""
        return {"synonym_threshold": self._settings.synonym_threshold,
                "fact_vectors": _fact_mode(self._settings.graph_vectors),
                "predicate_weight": self._settings.graph_predicate_weight,
                "max_synonyms": self._settings.synonym_max_neighbors,
                "train_fact_ivf_inline": False, "fact_index_exact_max": self.fact_index_exact_max,
                "train_phrase_ivf_inline": False, "phrase_index_exact_max": self.phrase_index_exact_max}

    def _new_graph(self) -> KnowledgeGraph:
        return KnowledgeGraph(self._dim, **self._graph_options())  # type: ignore[arg-type]

    def _lock(self, namespace: str) -> RWLock:
        with self._registry:
            return self._locks.setdefault(namespace, RWLock())

    def _graph(self, namespace: str) -> KnowledgeGraph:
        with self._registry:
            kg = self._graphs.get(namespace)
            if kg is None:
                kg = self._graphs[namespace] = self._new_graph()
            return kg

    def _reload(self, namespace: str) -> None:
        rows = graph_repo.load_graph_rows(self._db.reader(), namespace, self._dim)
        kg = restore_graph(self._dim, rows, **self._graph_options())
        with self._registry:
            self._graphs[namespace] = kg

    def start(self, namespaces: Sequence[str]) -> None:
        with self._db.transaction() as tx:
            requeued = graph_repo.requeue_running(tx)
        if requeued:
            log.info("resuming %d extraction jobs interrupted by a crash", requeued)
        for ns in namespaces:
            self._reload(ns)
        self._worker.start()
        for ns in namespaces:
            if graph_repo.job_counts(self._db.reader(), ns).get("pending") or self._graph(ns).ivf_due():
                self._worker.kick(ns)

    def stop(self, timeout: float = 10.0) -> None:
        self._worker.stop(timeout)

    # -- writes ------------------------------------------------------------------------------------------
    def on_write(self, tx, namespace: str, items: Sequence[tuple[int, EpisodeIn]]) -> None:
        """Inside the write transaction: store client extractions, queue extraction jobs."""
        given = [(seq, self._given_source(ep.text, r), r) for seq, ep in items
                 if (r := client_extraction(ep)) is not None]
        extractions_repo.save(tx, namespace, given)
        queued = [seq for seq, ep in items if ep.extraction is not None or self.extractor is not None]
        graph_repo.enqueue_jobs(tx, namespace, queued)

    def kick(self, namespace: str) -> None:
        self._worker.kick(namespace)

    def wait(self, namespace: str, timeout: float | None) -> Settled:
        return self._worker.wait_idle(namespace, timeout)

    def when_settled(self, namespace: str, callback) -> Settled | None:
        """See ``Worker.when_settled``: for waiters that must not hold a thread (the gRPC server)."""
        return self._worker.when_settled(namespace, callback)

    def forget_waiter(self, namespace: str, callback) -> None:
        self._worker.forget_waiter(namespace, callback)

    def failed_episodes(self, namespace: str, seqs: Sequence[int]) -> list[int]:
        """Those of ``seqs`` whose extraction failed for good."""
        return graph_repo.failed_seqs(self._db.reader(), namespace, seqs)

    def on_delete(self, tx, namespace: str, seqs: Sequence[int]) -> None:
        """Inside the delete transaction: drop the passages, their edges and orphaned phrases and facts."""
        if not seqs:
            return
        with self._lock(namespace).write():
            kg = self._graph(namespace)
            delta = kg.remove_passages(seqs)
            try:
                graph_repo.save_delta(tx, namespace, delta)
            except BaseException:
                with self._registry:
                    self._graphs.pop(namespace, None)  # in-memory graph is ahead of the store: reload lazily
                raise
        extractions_repo.delete(tx, namespace, seqs)
        if self.token_stash is not None:
            self.token_stash.forget(namespace, seqs)
        tx.execute("DELETE FROM extraction_jobs WHERE namespace = ? AND seq IN (SELECT unnest(?::BIGINT[]))",
                   [namespace, [int(s) for s in seqs]])
        self._worker.kick(namespace)  # the worker rebuilds the PPR matrix without the removed passages

    def on_delete_namespace(self, tx, namespace: str) -> None:
        graph_repo.delete_namespace_graph(tx, namespace)
        extractions_repo.delete(tx, namespace)
        if self.token_stash is not None:
            self.token_stash.forget(namespace)
        with self._registry:
            self._graphs.pop(namespace, None)

    def _process(self, namespace: str) -> bool:
        batch = self._settings.extraction_batch
        with self._db.transaction() as tx:
            seqs = graph_repo.claim_jobs(tx, namespace, batch)
        if seqs:
            self._add_batch(namespace, seqs)
        # After a batch, and also without one: a delete leaves the matrix stale, a start without a
        # persisted IVF leaves the fact or phrase index untrained.
        self._refresh_matrix(namespace)
        self._refresh_ivfs(namespace)
        return bool(seqs)

    def _add_batch(self, namespace: str, seqs: list[int]) -> None:
        try:
            self._extract_and_add(namespace, seqs)
        except BaseException:
            # Put the claimed jobs back (or fail them past MAX_ATTEMPTS) so they are not stuck 'running'
            # until the next restart; the worker retries the namespace after a pause.
            with self._db.transaction() as tx:
                for seq in seqs:
                    graph_repo.fail_job(tx, namespace, seq, "graph update failed; see the server log", MAX_ATTEMPTS)
            raise

    def _refresh_ivfs(self, namespace: str) -> None:
        """Past ``fact_index_exact_max`` facts (``phrase_index_exact_max`` phrases), fact search (the synonym
        search of new phrases) goes through an IVF; its k-means (tens of seconds at 100k) is trained here, with
        no lock held, and persisted so a restart never trains it. Writes meanwhile search exactly; the install
        catches up with them."""
        lock = self._lock(namespace)
        with lock.read():
            kg = self._graph(namespace)
            due = kg.ivf_due()
        for kind in due:
            with lock.read():
                if self._graph(namespace) is not kg:
                    return
                job = kg.ivf_job(kind)
            if job is None:
                continue
            trained = job.run()
            with lock.write():
                if self._graph(namespace) is not kg or not kg.install_ivf(kind, trained):
                    continue
            with self._db.transaction() as tx:
                if episodes_repo.namespace_exists(tx, namespace):
                    graph_repo.save_ivf(tx, namespace, kind, trained.blob, trained.built_at)

    def _refresh_matrix(self, namespace: str) -> None:
        """Build the PPR matrix of the current graph while queries keep reading, then swap it in. A delete
        that lands during the build makes it stale: build again (each try sees a newer version)."""
        lock = self._lock(namespace)
        for _ in range(5):
            with lock.read():
                kg = self._graph(namespace)
                if kg.matrix_current():
                    return
                matrix = kg.build_matrix()
            with lock.write():
                if self._graph(namespace) is kg and kg.install_matrix(matrix):
                    return
        log.warning("%s: graph kept changing during 5 matrix builds; the next batch rebuilds it", namespace)

    def _extract_and_add(self, namespace: str, seqs: list[int]) -> None:
        cur = self._db.reader()
        stored = extractions_repo.load(cur, namespace, seqs)
        episodes = episodes_repo.get_by_seqs(cur, namespace, [s for s in seqs if s not in stored])
        fresh: dict[int, ExtractionResult] = {}
        if episodes and self.extractor is not None:
            todo = sorted(episodes)
            fresh.update(zip(todo, self._extract_checked([episodes[s].text for s in todo]), strict=True))
        failed = {seq: r.error for seq, r in fresh.items() if r.error}
        ready = {**{s: r for s, r in fresh.items() if not r.error}, **stored}
        items = sorted(ready.items())
        source = {**extractions_repo.sources(cur, namespace, list(stored)), **dict.fromkeys(fresh, self.extractor_name)}
        groups: dict[str, list[tuple[int, ExtractionResult]]] = {}
        for seq, result in items:
            groups.setdefault(vector_mode(self._settings.graph_vectors, source.get(seq, CLIENT_SOURCE)), []).append(
                (seq, result))
        taken = self._taken_tokens(cur, namespace, items, episodes)
        with self._lock(namespace).read():
            kg = self._graph(namespace)
            by_mode = {mode: kg.texts_to_embed(g, fact_vectors=_fact_mode(mode)) for mode, g in groups.items()}
            texts = list(dict.fromkeys(t for ts in by_mode.values() for t in ts))
            # Phrases pooled from their episode's tokens first (never cached: they depend on the episode).
            vectors = (self._span_vectors(kg, groups["spans"], taken, set(by_mode["spans"]))
                       if taken and "spans" in groups else {})
        vectors.update(self._cached_vectors(cur, [t for t in texts if t not in vectors]))
        encoded: list[str] = [t for t in texts if t not in vectors]
        if encoded:
            vectors.update(zip(encoded, self._embed(encoded), strict=True))
            self.encoded_texts += len(encoded)

        def embed_fn(batch_texts: list[str]) -> np.ndarray:
            missing = [t for t in batch_texts if t not in vectors]
            if missing:  # another passage added these phrases' neighbours since: embed what is left
                vectors.update(zip(missing, self._embed(missing), strict=True))
                encoded.extend(missing)
                self.encoded_texts += len(missing)
            return np.stack([vectors[t] for t in batch_texts]) if batch_texts else np.zeros((0, self._dim), np.float32)

        with self._db.transaction() as tx:
            live = set(episodes_repo.get_by_seqs(tx, namespace, [s for s, _ in items]))
            items = [(s, r) for s, r in items if s in live]  # deleted since the claim: skip
            with self._lock(namespace).write():
                kg = self._graph(namespace)
                try:
                    for mode, group in sorted(groups.items()):  # one delta per vector mode (auto: per source)
                        delta = kg.add_passages([(s, r) for s, r in group if s in live], embed_fn,
                                                fact_vectors=_fact_mode(mode))
                        graph_repo.save_delta(tx, namespace, delta)
                    if self._model is not None and encoded:
                        embedding_cache_repo.store(tx, self._model, encoded, np.stack([vectors[t] for t in encoded]))
                except BaseException:
                    with self._registry:
                        self._graphs.pop(namespace, None)
                    raise
            extractions_repo.save(tx, namespace, [(s, self.extractor_name, fresh[s]) for s, _ in items if s in fresh])
            graph_repo.finish_jobs(tx, namespace, [s for s in seqs if s not in failed])
            for seq, error in failed.items():
                graph_repo.fail_job(tx, namespace, seq, error or "extraction failed", MAX_ATTEMPTS)
        if failed:
            log.warning("%s: extraction failed for %d episodes (will retry up to %d times)", namespace,
                        len(failed), MAX_ATTEMPTS)

    def _extract_checked(self, texts: list[str]) -> list[ExtractionResult]:
        """The extractor's results, one per text in order, or errors where it broke that contract.

        A result list of the wrong length cannot be matched to its texts (which one is missing?), so the
        batch is retried a text at a time; a text that still gets no single result is an extraction failure
        like any other (retried, then ``extraction_failed`` in GetStats) instead of a job silently marked done.
        """
        assert self.extractor is not None
        results = self.extractor.extract(texts)
        if len(results) == len(texts):
            return results
        self.extractor_contract_violations += 1
        log.error("extractor %s broke its contract: %d results for %d texts; extracting them one at a time",
                  self.extractor_name, len(results), len(texts))
        checked: list[ExtractionResult] = []
        for text in texts:
            single = self.extractor.extract([text]) if len(texts) > 1 else results
            if len(single) == 1:
                checked.append(single[0])
                continue
            if len(texts) > 1:
                self.extractor_contract_violations += 1
            checked.append(ExtractionResult(entities=(), triples=(), error=(
                f"extractor {self.extractor_name} returned {len(single)} results for one text "
                "(its contract: exactly one result per text, in order)")))
        return checked

    def _given_source(self, text: str, given: ExtractionResult) -> str:
        """Who made an extraction a client sent: the offline extractor's name when it is exactly what that
        extractor finds in the text (an export of this or another server, moved with ``import-namespace``: under
        ``graph_vectors = "auto"`` it must get the vectors it got there), else "client"."""
        if not isinstance(self.extractor, OfflineExtractor):
            return CLIENT_SOURCE
        mine = self.extractor.extract_one(text)
        same = (tuple(mine.entities) == tuple(given.entities)
                and [(t.subject, t.predicate, t.object) for t in mine.triples]
                == [(t.subject, t.predicate, t.object) for t in given.triples])
        return self.extractor.name if same else CLIENT_SOURCE

    def vector_sources(self) -> dict[str, int]:
        """Graph strings given a vector since start, by where it came from: pooled from the episode's tokens
        (``span``), read from the shared cache (``cache``), or encoded (``encoded``)."""
        return {"span": self.span_vectors, "cache": self.embedding_cache_hits, "encoded": self.encoded_texts}

    @property
    def wants_tokens(self) -> bool:
        """The write path should hand over episodes' token vectors (``stash_tokens``)."""
        return self.token_stash is not None and self.extractor is not None

    def stash_tokens(self, namespace: str, items: Sequence[tuple[int, str, TokenVectors]]) -> None:
        """Written episodes' (seq, text, token vectors), for their phrases (see ``graph_vectors``)."""
        if self.token_stash is not None:
            self.token_stash.put(namespace, items)

    def _taken_tokens(self, cur, namespace: str, items: Sequence[tuple[int, ExtractionResult]],
                      episodes: Mapping[int, Episode]) -> dict[int, TokenVectors]:
        if self.token_stash is None or not items or not len(self.token_stash):
            return {}
        seqs = [s for s, _ in items]
        texts = {s: episodes[s].text for s in seqs if s in episodes}
        missing = [s for s in seqs if s not in texts]
        if missing:
            texts.update((s, e.text) for s, e in episodes_repo.get_by_seqs(cur, namespace, missing).items())
        return self.token_stash.take(namespace, texts)

    def _span_vectors(self, kg: KnowledgeGraph, items: Sequence[tuple[int, ExtractionResult]],
                      taken: Mapping[int, TokenVectors], wanted: set[str]) -> dict[str, np.ndarray]:
        """Vectors for the new phrases of ``items`` found among their own episode's tokens."""
        assert self._phrase_tokens is not None
        per_passage = [(seq, [t for t in kg.new_phrases(r) if t in wanted]) for seq, r in items if seq in taken]
        phrases = list(dict.fromkeys(t for _, ts in per_passage for t in ts))
        token_ids = dict(zip(phrases, self._phrase_tokens(phrases), strict=True))
        out: dict[str, np.ndarray] = {}
        for seq, ts in per_passage:
            for t in ts:
                if t not in out and (vec := span_vector(taken[seq], token_ids[t])) is not None:
                    out[t] = vec
        self.span_vectors += len(out)
        return out

    def _cached_vectors(self, cur, texts: list[str]) -> dict[str, np.ndarray]:
        """Vectors the shared cache holds for ``texts`` under this server's model (empty without a cache)."""
        if self._model is None or not texts:
            return {}
        found = embedding_cache_repo.lookup(cur, self._model, texts, self._dim)
        self.embedding_cache_hits += len(found)
        return found

    # -- reads -------------------------------------------------------------------------------------------
    def has_graph(self, namespace: str) -> bool:
        with self._lock(namespace).read():
            return self._graph(namespace).passage_count > 0

    def retrieve(self, namespace: str, query_text: str, qvec: np.ndarray, dense_scores: Mapping[int, float],
                 mode: QueryMode, params: GraphParams, fused: Mapping[int, float] | None = None) -> GraphResult:
        """GRAPH or HYBRID over the namespace's graph, seeded on ``dense_scores``. HYBRID with ``fused`` (the
        dense + BM25 + lifts scores) blends them in after the walk (graph_retrieval.fused_retrieve)."""
        phrases = self.query_phrases(query_text) if params.query_entity_weight > 0 else ()
        lock = self._lock(namespace)
        fact_filter = None
        if self._fact_filter_factory is not None:
            # The LLM filter is a network call: decide on the candidates between two read sections, then
            # replay the decision (a pure set lookup) inside the ranking.
            with lock.read():
                candidates = candidate_facts(qvec, self._graph(namespace), params)
            kept = {f.fact_id for f in self._fact_filter_factory(query_text)(candidates)} if candidates else set()
            fact_filter = lambda found: [f for f in found if f.fact_id in kept]  # noqa: E731
        with lock.read():
            kg = self._graph(namespace)
            if mode == QueryMode.HYBRID and fused is not None:
                return fused_retrieve(qvec, kg, dense_scores, fused, HybridParams(graph=params),
                                      fact_filter=fact_filter, query_phrases=phrases)
            if mode == QueryMode.HYBRID:
                return hybrid_retrieve(qvec, kg, dense_scores, HybridParams(graph=params), fact_filter=fact_filter,
                                       query_phrases=phrases)
            return graph_retrieve(qvec, kg, dense_scores, params, fact_filter=fact_filter, query_phrases=phrases)

    def query_phrases(self, query_text: str) -> tuple[str, ...]:
        """Entity spans the query names (offline extractor, whatever extractor indexes), normalised like phrases."""
        entities = self._query_extractor.extract_one(query_text).entities
        return tuple(dict.fromkeys(p for p in (normalize_phrase(e) for e in entities) if p))

    def counters(self, namespace: str) -> dict[str, int]:
        """In-memory counters only, O(1): never walks the graph (a dashboard polling stats must not slow
        queries)."""
        with self._lock(namespace).read():
            kg = self._graph(namespace)
            return {"phrase_count": len(kg.phrases), "fact_count": len(kg.facts), "graph_edge_count": kg.edge_count}

    def export(self, namespace: str, fmt: str, passages: Mapping[int, tuple[str, str]], *,
               directed: bool = False) -> tuple[bytes, int, int]:
        """``passages``: seq → (episode id, text)."""
        info = {seq: graph_export.PassageInfo(i, t) for seq, (i, t) in passages.items()}
        with self._lock(namespace).read():
            kg = self._graph(namespace)
            graph = graph_export.to_networkx(kg, info, directed=directed)
        data = graph_export.node_link_bytes(graph) if fmt == "node-link" else graph_export.graphml_bytes(graph)
        return data, graph.number_of_nodes(), graph.number_of_edges()

