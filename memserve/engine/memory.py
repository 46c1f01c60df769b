"""MemoryEngine: the orchestration behind every RPC. Thin on purpose: validation, storage, indexes,
retrieval, the graph and HEMA each live in their own module; this class wires them and owns ordering
(what is committed before what is acknowledged)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from ..config import Settings
from ..domain.clock import SystemClock
from ..embed import Embedder, EncoderScheduler, make_embedder
from ..embed.spans import TokenVectors
from ..errors import (
    ConfigError,
    DeadlineExceeded,
    EpisodeNotFound,
    ExtractionFailed,
    InvalidArgument,
    MemserveError,
    NamespaceNotFound,
)
from ..store import episodes_repo, hema_repo, snapshots_repo
from ..store.backup import BackupInfo
from ..store.backup import backup as backup_database
from ..store.commit_mark import MARK_FILE, CommitMark
from ..store.db import DB_FILE, Database, storage_error
from ..store.llm_cache_repo import DuckDBLLMCache
from ..types import DEFAULT_IMPORTANCE, Episode, EpisodeIn, QueryIn, QueryResult, WriteResult
from . import paging, transfer
from .background import Settled
from .graph_service import GraphService
from .hema import Hema, SummaryView
from .ids import episode_id, refuse_conflicts
from .index_registry import IndexRegistry
from .lexical_registry import LexicalRegistry
from .pruning import PruneDecision
from .retrieval import Retriever
from .stats import StatsCache
from .validation import check_episode_id, check_episodes, check_namespace, check_query

log = logging.getLogger(__name__)


def _monotonic() -> float:
    return time.monotonic()  # one seam, so tests can move a deadline past without waiting for it


def _stored_by_id(cur, namespace: str, seqs: dict[str, int]) -> dict[str, Episode]:
    """The stored episodes of ``seqs`` (id → seq), by id: what a re-send is compared with."""
    if not seqs:
        return {}
    return {e.id: e for e in episodes_repo.get_by_seqs(cur, namespace, list(seqs.values())).values()}


def _check_deadline(deadline: float | None, message: str) -> None:
    if deadline is not None and _monotonic() >= deadline:
        raise DeadlineExceeded(message)


class MemoryEngine:
    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, clock=None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock().now
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.data_dir / DB_FILE, checkpoint_threshold_mb=settings.checkpoint_threshold_mb)
        self.commit_mark = CommitMark(settings.data_dir / MARK_FILE)
        self._own_embedder = embedder is None
        raw = embedder or self._load_embedder()
        # Every encode goes through one scheduler: queries first, writes and graph updates in small chunks.
        self.embedder = EncoderScheduler(raw, chunk_size=settings.encode_chunk,
                                         chunk_chars=settings.encode_chunk_chars or None)
        self._check_embedder_matches()
        self.indexes = IndexRegistry(self.db, settings.data_dir / "indexes", dim=self.embedder.dim,
                                     kind=settings.index_kind, hnsw_threshold=settings.hnsw_threshold,
                                     use_gpu=settings.use_gpu)
        self.llm = self._make_llm(settings)
        self.hema = Hema(settings, self.db, self.clock, llm=self.llm)
        self.graph = GraphService(settings, self.db, self.embedder.embed, self.embedder.dim, llm=self.llm,
                                  model=self.embedder.name if settings.graph_embedding_cache else None,
                                  phrase_tokens=self.embedder.phrase_token_ids if self.embedder.supports_tokens
                                  else None)
        self.stats_cache = StatsCache()
        self.lexical = LexicalRegistry(self.db, k1=settings.lexical_k1, b=settings.lexical_b,
                                       with_previous=settings.lexical_previous_turn)
        self.retriever = Retriever(settings, self.db, self.embedder, self.indexes, self.graph, self.hema,
                                   self.lexical, self.clock)
        self._closed = False
        self._close_lock = threading.Lock()
        self._replica_loader: threading.Thread | None = None
        self._maintenance_stop = threading.Event()
        self._maintenance = threading.Thread(target=self._maintenance_loop, name="memserve-maintenance",
                                             daemon=True)

    def _load_embedder(self) -> Embedder:
        s = self.settings
        return make_embedder(s.embedding_model, device=s.embedding_device, batch_size=s.embedding_batch_size,
                             batch_chars=s.embedding_batch_chars or None)

    def _start_query_lane(self) -> None:
        try:
            self.embedder.start_query_lane(self._load_embedder())
            log.info("query encoder replica loaded: queries no longer share the encoder with writes")
        except Exception:  # queries keep jumping the bulk queue on the shared encoder
            log.exception("could not start the query encoder replica")

    def _make_llm(self, settings: Settings):
        if not settings.llm_model:
            return None
        from ..llm import LLMClient, LLMSettings

        return LLMClient(LLMSettings(model=settings.llm_model, api_base=settings.llm_api_base or None,
                                     # Local OpenAI-compatible servers (vLLM, Ollama) need no key, but the
                                     # openai client refuses to run without one.
                                     api_key=settings.llm_api_key or ("not-needed" if settings.llm_api_base else None),
                                     timeout_s=settings.llm_timeout_s,
                                     max_retries=settings.llm_max_retries,
                                     max_concurrency=settings.llm_max_concurrency,
                                     max_tokens=settings.llm_max_tokens,
                                     prompt_style=settings.llm_prompt_style),
                         cache=DuckDBLLMCache(self.db))

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load and reconcile every derived structure with DuckDB."""
        t0 = time.perf_counter()
        replayed = self.db.max_seq()
        short = self.commit_mark.check(replayed)
        if short:
            log.error("%s", short)
        self.commit_mark.reset(replayed)
        namespaces = episodes_repo.all_namespaces(self.db.reader())
        repairs = self.indexes.load_all(namespaces)
        repaired = {ns: r for ns, r in repairs.items() if any(r)}
        self.lexical.load_all(namespaces)  # nothing of it is persisted: rebuilt from DuckDB at every start
        self.graph.start(namespaces)
        self.hema.start()
        self._maintenance.start()
        if self._own_embedder and self.settings.query_encoder_replica \
                and not self.settings.embedding_model.startswith("hash:"):
            self._replica_loader = threading.Thread(target=self._start_query_lane, name="memserve-replica-load",
                                                    daemon=True)
            self._replica_loader.start()
        log.info("loaded %d namespaces in %.2fs%s", len(namespaces), time.perf_counter() - t0,
                 f"; repaired indexes {repaired}" if repaired else "")

    def flush(self) -> None:
        if self.db.failed is None:
            self.indexes.snapshot()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the workers (each gets at most ``timeout`` s to finish its batch: unfinished work is queued in
        DuckDB and resumes at the next start), snapshot the indexes, checkpoint and close."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._maintenance_stop.set()
            if self._maintenance.is_alive():
                self._maintenance.join(timeout)
            self.graph.stop(timeout)
            self.hema.stop(timeout)
            if self._replica_loader is not None:
                # A thread still inside torch's model load at interpreter exit aborts the process.
                self._replica_loader.join(timeout)
            self.embedder.close(timeout)
            if self.db.failed is None:  # a failed database records no checksums: next start rebuilds
                try:
                    self.indexes.snapshot(all_namespaces=True)
                except (OSError, MemserveError) as exc:  # a full disk: the next start rebuilds from DuckDB
                    log.error("index snapshot at shutdown failed (%s); the next start rebuilds the indexes",
                              storage_error(exc) or exc)
            self.db.close_readers()
            self.db.checkpoint()
            self.db.close()

    def _maintenance_loop(self) -> None:
        """Flush access statistics every second; run scheduled pruning when configured."""
        last_prune = time.monotonic()
        interval = self.settings.prune_interval_s
        while not self._maintenance_stop.wait(1.0):
            try:
                self.hema.flush_accesses()
                if interval and time.monotonic() - last_prune >= interval:
                    last_prune = time.monotonic()
                    for ns in episodes_repo.all_namespaces(self.db.reader()):
                        self.prune(ns)
            except Exception as exc:  # never let housekeeping kill the server; the next round retries
                known = self.db.note_failure(exc)
                if known is None:
                    log.exception("maintenance round failed")
                else:  # a full disk: one line a round, not a traceback a second
                    log.warning("maintenance round failed: %s", known.message)

    def _check_embedder_matches(self) -> None:
        key = f"{self.embedder.name}|{self.embedder.dim}"
        with self.db.transaction() as tx:
            row = tx.execute("SELECT value FROM server_meta WHERE key = 'embedder'").fetchone()
            if row is None:
                tx.execute("INSERT INTO server_meta VALUES ('embedder', ?)", [key])
            elif row[0] != key:
                raise ConfigError(
                    f"data directory {self.settings.data_dir} was written with embedder {row[0]!r}, not {key!r}: "
                    "use the same embedding_model, or a new data directory")

    # -- writes ------------------------------------------------------------------------------------------
    def write(self, namespace: str, episodes: Sequence[EpisodeIn], *, wait_for_graph: bool = False,
              timeout: float | None = None) -> WriteResult:
        """Store (and, with ``wait_for_graph``, wait for the graph) on the calling thread. The gRPC server
        calls ``store`` and waits for the graph on its event loop instead (``graph.when_settled``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        result, seqs = self.store(namespace, episodes, deadline=deadline)
        if wait_for_graph:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.check_graph(namespace, seqs, self.graph.wait(namespace, remaining))
        return result

    def store(self, namespace: str, episodes: Sequence[EpisodeIn], *,
              deadline: float | None = None, embeddings: np.ndarray | None = None,
              create_times: Sequence[datetime] | None = None) -> tuple[WriteResult, list[int]]:
        """Validate, embed and commit. Returns the result and the seqs of every episode named (new or not).
        ``deadline`` (time.monotonic()) is checked before the encode and again before the commit, so a call
        the client has given up on never lands after its DEADLINE_EXCEEDED. An import passes the episodes'
        ``embeddings`` (row i for episodes[i]; not encoded again, though the graph may still take the texts' token
        vectors, see below) and original ``create_times``."""
        check_namespace(namespace)
        check_episodes(episodes, self.settings)
        ids = [episode_id(ep) for ep in episodes]
        cur = self.db.reader()
        existing = episodes_repo.existing_ids(cur, namespace, sorted(set(ids)))
        refuse_conflicts(ids, episodes, _stored_by_id(cur, namespace, existing))
        fresh: dict[str, EpisodeIn] = {}
        rows: list[int] = []
        for i, (id_, ep) in enumerate(zip(ids, episodes, strict=True)):
            if id_ not in existing and id_ not in fresh:
                fresh[id_] = ep
                rows.append(i)
        _check_deadline(deadline, "the deadline passed before the episodes were encoded; nothing was written")
        # Embedding is the slow part: do it before taking the write lock.
        tokens: list[TokenVectors] | None = None
        if embeddings is not None:
            vectors = embeddings[rows] if fresh else None
            if fresh and self.graph.wants_tokens:  # an import: the graph still pools phrases from the episodes' tokens,
                # so the copy gets the vectors the source got (one forward pass; its sentence vectors are dropped)
                _, tokens = self.embedder.embed_with_tokens([ep.text for ep in fresh.values()])
        elif fresh and self.graph.wants_tokens:  # the same forward pass gives the graph its phrase vectors
            vectors, tokens = self.embedder.embed_with_tokens([ep.text for ep in fresh.values()])
        else:
            vectors = self.embedder.embed([ep.text for ep in fresh.values()]) if fresh else None
        born = None if create_times is None else {ids[i]: create_times[i] for i in rows}
        now = self.clock()
        stored: list[Episode] = []
        try:
            self._commit_new(namespace, fresh, vectors, now, stored, deadline, born, tokens)
        except BaseException:
            if stored:  # the transaction rolled back: take its vectors out of the indexes again
                self.indexes.remove(namespace, np.array([e.seq for e in stored], dtype=np.int64))
                self.lexical.remove(namespace, [e.seq for e in stored])
            raise
        if stored:
            self.commit_mark.advance(max(e.seq for e in stored))
            self.hema.episodes_written(namespace, {e.session_id for e in stored})
            self.graph.kick(namespace)
        created_ids = {e.id for e in stored}
        created, seen = [], set()
        for id_ in ids:
            created.append(id_ in created_ids and id_ not in seen)
            seen.add(id_)
        seq_of = {**existing, **{e.id: e.seq for e in stored}}
        return WriteResult(ids=ids, created=created), sorted({seq_of[i] for i in ids if i in seq_of})

    def check_graph(self, namespace: str, seqs: Sequence[int], status: Settled) -> None:
        """Turn the outcome of a wait for the graph into the write's answer."""
        if status is Settled.TIMEOUT:
            raise DeadlineExceeded("the episodes are stored and searchable, but the graph has not caught up "
                                   "before the deadline; re-send the same write (it is idempotent) to keep waiting")
        failed = self.graph.failed_episodes(namespace, seqs)
        if failed or status is Settled.FAILED:
            raise ExtractionFailed(
                f"the episodes are stored and searchable by dense search, but the graph update failed for good"
                f" ({len(failed)} of {len(seqs)} episodes; GetStats shows extraction_failed, the server log "
                "the error)")

    def _commit_new(self, namespace: str, fresh: dict[str, EpisodeIn], vectors, now: datetime,
                    stored: list[Episode], deadline: float | None,
                    born: dict[str, datetime] | None = None, tokens: list[TokenVectors] | None = None) -> None:
        with self.db.transaction() as tx:
            _check_deadline(deadline, "the deadline passed before the episodes were committed; nothing was written")
            episodes_repo.ensure_namespace(tx, namespace, now)
            # A concurrent identical write may have landed since the check above.
            raced = episodes_repo.existing_ids(tx, namespace, list(fresh))
            refuse_conflicts(list(raced), [fresh[i] for i in raced], _stored_by_id(tx, namespace, raced))
            keep = [i for i, id_ in enumerate(fresh) if id_ not in raced]
            if keep:
                seqs = episodes_repo.next_seqs(tx, len(keep))
                items = list(fresh.items())
                for seq, i in zip(seqs, keep, strict=True):
                    id_, ep = items[i]
                    stored.append(Episode(
                        seq=seq, namespace=namespace, id=id_, session_id=ep.session_id, speaker=ep.speaker,
                        text=ep.text, event_time=ep.event_time, metadata=dict(ep.metadata),
                        importance=DEFAULT_IMPORTANCE if ep.importance is None else float(ep.importance), pinned=ep.pinned,
                        create_time=born[id_] if born else now, text_bytes=len(ep.text.encode("utf-8", errors="surrogatepass"))))
                vectors = vectors[keep]
                episodes_repo.insert_episodes(tx, stored, vectors)
                if tokens is not None:  # before the commit, so the worker cannot claim the job first; the stash
                    # checks the text when taken, so a rolled-back write leaves nothing wrong behind
                    self.graph.stash_tokens(namespace, [(e.seq, e.text, tokens[i])
                                                        for e, i in zip(stored, keep, strict=True)])
                self.graph.on_write(tx, namespace, [(e.seq, fresh[e.id]) for e in stored])
                # Added under the write lock, so a delete of these episodes cannot slip in between the commit
                # and the index update. Should the commit fail, write() takes the vectors out again.
                self.indexes.add(namespace, np.array([e.seq for e in stored], dtype=np.int64), vectors)
                self.lexical.add(namespace, [(e.seq, e.session_id, e.speaker, e.text, e.event_time) for e in stored])

    def delete(self, namespace: str, ids: Sequence[str]) -> tuple[int, list[str]]:
        check_namespace(namespace)
        for i, id_ in enumerate(ids):
            if not id_:
                raise InvalidArgument(f"ids[{i}] is empty", field=f"ids[{i}]")
            check_episode_id(id_, f"ids[{i}]")
        self.require_namespace(namespace)
        with self.db.transaction() as tx:
            deleted = episodes_repo.delete_episodes(tx, namespace, list(dict.fromkeys(ids)))
            self._forget(tx, namespace, list(deleted.values()))
        self.indexes.remove(namespace, np.array(list(deleted.values()), dtype=np.int64))
        self.lexical.remove(namespace, deleted.values())
        return len(deleted), [i for i in dict.fromkeys(ids) if i not in deleted]

    def delete_namespace(self, namespace: str) -> int:
        check_namespace(namespace)
        self.require_namespace(namespace)
        try:
            with self.db.transaction() as tx:
                count = episodes_repo.delete_namespace(tx, namespace)
                hema_repo.delete_namespace(tx, namespace)
                self.graph.on_delete_namespace(tx, namespace)
                snapshots_repo.forget(tx, namespace)
                # Inside the transaction, like a write's index add: a write that re-creates the namespace
                # commits after this and adds its vectors to a fresh index, never to the one being dropped.
                self.indexes.drop(namespace)
                self.lexical.drop(namespace)
        except BaseException:
            self.indexes.reload(namespace)  # rolled back: the indexes follow the database again
            self.lexical.reload(namespace)
            raise
        return count

    # -- reads -------------------------------------------------------------------------------------------
    def require_namespace(self, namespace: str) -> None:
        if not episodes_repo.namespace_exists(self.db.reader(), namespace):
            raise NamespaceNotFound(f"namespace {namespace!r} does not exist (namespaces are created by their "
                                    "first write)", field="namespace")

    def get(self, namespace: str, id_: str) -> Episode:
        check_namespace(namespace)
        if not id_:
            raise InvalidArgument("id is required", field="id")
        self.require_namespace(namespace)
        episode = episodes_repo.get_episode(self.db.reader(), namespace, id_)
        if episode is None:
            raise EpisodeNotFound(f"episode {id_!r} does not exist in namespace {namespace!r}", field="id")
        return episode

    def list_episodes(self, namespace: str, *, page_size: int = 0, page_token: str = "",
                      session_id: str = "") -> tuple[list[Episode], str]:
        check_namespace(namespace)
        size = paging.page_size(page_size)
        after = paging.decode(page_token, "episodes", f"{namespace}\x1f{session_id}", 0)
        self.require_namespace(namespace)
        rows = episodes_repo.list_episodes(self.db.reader(), namespace, int(after), size + 1, session_id)
        token = paging.encode("episodes", f"{namespace}\x1f{session_id}", rows[size - 1].seq) \
            if len(rows) > size else ""
        return rows[:size], token

    def list_namespaces(self, *, page_size: int = 0, page_token: str = "",
                        visible: Callable[[str], bool] | None = None) -> tuple[list[tuple], str]:
        """``visible``: only namespaces it accepts (a scoped key's view); pages stay full."""
        size = paging.page_size(page_size)
        after = str(paging.decode(page_token, "namespaces", "", ""))
        if visible is None:
            rows = episodes_repo.list_namespaces(self.db.reader(), after, size + 1)
        else:
            rows = []
            while len(rows) <= size:
                batch = episodes_repo.list_namespaces(self.db.reader(), after, 4 * size + 1)
                rows += [r for r in batch if visible(r[0])]
                if len(batch) < 4 * size + 1:
                    break
                after = batch[-1][0]
            rows = rows[:size + 1]
        token = paging.encode("namespaces", "", rows[size - 1][0]) if len(rows) > size else ""
        return rows[:size], token

    def query(self, q: QueryIn, *, deadline: float | None = None) -> QueryResult:
        check_query(q, self.settings)
        self.require_namespace(q.namespace)
        _check_deadline(deadline, "the deadline passed before the query started")
        return self.retriever.query(q)

    # -- HEMA --------------------------------------------------------------------------------------------
    def _forget(self, tx, namespace: str, seqs: list[int]) -> None:
        """Everything derived from deleted episodes that lives in DuckDB (same transaction as the delete)."""
        hema_repo.forget_episodes(tx, namespace, seqs)
        self.graph.on_delete(tx, namespace, seqs)

    def summary(self, namespace: str, session_id: str = "") -> SummaryView:
        check_namespace(namespace)
        self.require_namespace(namespace)
        return self.hema.summary(namespace, session_id)

    def prune(self, namespace: str, *, dry_run: bool = False, max_episodes: int = 0, max_bytes: int = 0,
              min_score: float | None = None) -> tuple[list[PruneDecision], int, dict[int, str]]:
        """Returns (decisions, remaining episode count, texts of the selected episodes)."""
        check_namespace(namespace)
        self.require_namespace(namespace)
        policy = self.hema.policy(max_episodes, max_bytes, min_score)
        decisions = self.hema.select(namespace, policy) \
            if (policy.max_episodes or policy.max_bytes or policy.min_score is not None) else []
        seqs = [d.seq for d in decisions]
        texts = {seq: e.text for seq, e in episodes_repo.get_by_seqs(self.db.reader(), namespace, seqs).items()}
        if not dry_run and decisions:
            with self.db.transaction() as tx:
                # Only episodes still present: a concurrent delete may have removed some already.
                present = set(episodes_repo.get_by_seqs(tx, namespace, seqs))
                decisions = [d for d in decisions if d.seq in present]
                episodes_repo.delete_by_seqs(tx, namespace, [d.seq for d in decisions])
                self._forget(tx, namespace, [d.seq for d in decisions])
                self.hema.forget(tx, namespace, decisions)
            self.indexes.remove(namespace, np.array([d.seq for d in decisions], dtype=np.int64))
            self.lexical.remove(namespace, [d.seq for d in decisions])
            log.info("pruned %d episodes from %s", len(decisions), namespace)
        remaining = episodes_repo.namespace_counts(self.db.reader(), namespace)[0]
        return decisions, remaining, texts

    # -- administration -----------------------------------------------------------------------------------
    def backup(self, directory: str) -> BackupInfo:
        if not directory:
            raise InvalidArgument("directory is required", field="directory")
        return backup_database(self.db, Path(directory))

    @property
    def embedder_key(self) -> str:
        return f"{self.embedder.name}|{self.embedder.dim}"

    def export_namespace(self, namespace: str, *, page_size: int = 0,
                         page_token: str = "") -> tuple[Sequence[transfer.ExportedEpisode], str]:
        check_namespace(namespace)
        self.require_namespace(namespace)
        return transfer.export_page(self.db, namespace, page_size, page_token)

    def import_namespace(self, namespace: str, episodes: Sequence[EpisodeIn], embeddings: Sequence[bytes],
                         create_times: Sequence[datetime | None], model: str) -> WriteResult:
        check_namespace(namespace)
        vectors = transfer.check_embeddings(embeddings, self.embedder.dim, model, self.embedder_key)
        now = self.clock()
        result, _ = self.store(namespace, episodes, embeddings=vectors,
                               create_times=[t or now for t in create_times])
        return result

    def export_graph(self, namespace: str, fmt: str, directed: bool = False) -> tuple[bytes, int, int]:
        check_namespace(namespace)
        self.require_namespace(namespace)
        passages = episodes_repo.ids_and_texts_by_seq(self.db.reader(), namespace)
        return self.graph.export(namespace, fmt, passages, directed=directed)
