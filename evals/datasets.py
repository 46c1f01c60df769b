"""Readers for the benchmark files described in ../shared/data/SOURCES.md.

Multi-hop QA: a questions file (MuSiQue records, or HotpotQA / 2Wiki records) plus a corpus (a list of
``{title, text}`` or a dict ``title -> [sentences]``), optionally HippoRAG's OpenIE cache. The record format is
detected from each record, so any file in one of these formats works whatever the dataset is called.
LoCoMo: a list of conversations with ``session_<n>`` turn lists and ``qa``.

Passages are ``title + "\\n" + text`` (HippoRAG's indexing string, also the OpenIE cache's ``passage`` key) and
get a content-hash id, so gold matching is by id and re-sending a passage is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memserve.extract import clean_triples as _clean_triples

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# --dataset NAME -> (questions, corpus, openie cache or None), relative to the shared data directory.
MULTIHOP_DATASETS: dict[str, tuple[str, str, str | None]] = {
    "musique": ("musique/musique_train.json", "musique/musique_train_corpus.json",
                "musique/openie_musique_train_results_ner_gpt-3.5-turbo-1106_1890.json"),
    "hotpotqa": ("hotpotqa/hotpotqa_train.json", "hotpotqa/hotpotqa_train_corpus.json", None),
    "2wiki": ("2wikimultihopqa/2wikimultihopqa_dev.json", "2wikimultihopqa/2wikimultihopqa_corpus.json", None),
    "sample": ("sample/sample.json", "sample/sample_corpus.json", None),
}
LOCOMO_DEFAULT = "locomo/locomo_dev.json"


class DatasetError(ValueError):
    """A data file is not in any format these evals understand; the message says where and why."""


def load_json(path: Path) -> Any:
    # HippoRAG's OpenIE cache holds a literal NaN at the top level: Python's json accepts it.
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


def passage_string(title: str, text: str) -> str:
    return f"{title}\n{text}"


def passage_id(passage: str) -> str:
    # Titles are not unique in MuSiQue (different paragraphs share a title), so the id is a content hash.
    return "p-" + hashlib.sha256(passage.encode("utf-8")).hexdigest()[:24]


# --- corpus ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str  # title + "\n" + body: what is indexed

@dataclass
class Corpus:
    passages: list[Passage]
    by_id: dict[str, Passage] = field(init=False)
    ids_by_title: dict[str, list[str]] = field(init=False)
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.by_id = {p.id: p for p in self.passages}
        self.ids_by_title = {}
        for p in self.passages:
            self.ids_by_title.setdefault(p.title, []).append(p.id)


def _sentences(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return "".join(value)  # HotpotQA sentences carry their own leading spaces
    raise DatasetError(f"{where}: expected a string or a list of sentences")


def parse_corpus(data: Any, where: str = "corpus") -> Corpus:
    """A list of ``{title, text}`` or a dict ``title -> sentences``; identical passages are kept once."""
    pairs: list[tuple[str, str]] = []
    if isinstance(data, Mapping):
        pairs = [(str(title), _sentences(body, f"{where}[{title!r}]")) for title, body in data.items()]
    elif isinstance(data, list):
        for i, rec in enumerate(data):
            if not isinstance(rec, Mapping) or "title" not in rec or ("text" not in rec and "sentences" not in rec):
                raise DatasetError(f"{where}[{i}]: expected an object with 'title' and 'text'")
            pairs.append((str(rec["title"]), _sentences(rec.get("text", rec.get("sentences")), f"{where}[{i}]")))
    else:
        raise DatasetError(f"{where}: expected a list of {{title, text}} or an object title -> sentences")
    seen: set[str] = set()
    passages: list[Passage] = []
    for title, body in pairs:
        text = passage_string(title, body)
        pid = passage_id(text)
        if pid in seen:
            continue
        seen.add(pid)
        passages.append(Passage(pid, title, text))
    return Corpus(passages, duplicates=len(pairs) - len(passages))


# --- questions ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    # One entry per gold passage: the ids that satisfy it (empty when it is not in the corpus).
    gold: tuple[frozenset[str], ...]
    format: str  # "musique" or "supporting_facts"
    category: str = ""


def detect_format(record: Any) -> str:
    if isinstance(record, Mapping):
        paragraphs = record.get("paragraphs")
        if isinstance(paragraphs, list) and paragraphs and all(
                isinstance(p, Mapping) and "is_supporting" in p for p in paragraphs):
            return "musique"
        if isinstance(record.get("supporting_facts"), list):
            return "supporting_facts"
    return "unknown"


def _answers(record: Mapping[str, Any]) -> tuple[str, ...]:
    answer = record.get("answer", ())
    answers = list(answer) if isinstance(answer, list) else [answer]
    answers += list(record.get("answer_aliases") or ())
    return tuple(dict.fromkeys(str(a) for a in answers if a is not None and str(a).strip()))


def parse_question(record: Any, corpus: Corpus, where: str) -> Question:
    fmt = detect_format(record)
    if fmt == "unknown":
        raise DatasetError(f"{where}: neither a MuSiQue record (paragraphs with is_supporting) nor a "
                           "HotpotQA / 2Wiki record (supporting_facts)")
    if not isinstance(record.get("question"), str) or not record["question"].strip():
        raise DatasetError(f"{where}: missing 'question'")
    qid = str(record.get("id", record.get("_id", where)))
    gold: list[frozenset[str]] = []
    if fmt == "musique":
        for p in record["paragraphs"]:
            if p["is_supporting"]:
                body = p.get("paragraph_text", p.get("text"))
                if body is None:
                    raise DatasetError(f"{where}: a paragraph has neither 'paragraph_text' nor 'text'")
                pid = passage_id(passage_string(str(p["title"]), body))
                gold.append(frozenset({pid} & corpus.by_id.keys()))
    else:
        titles = dict.fromkeys(str(fact[0]) for fact in record["supporting_facts"])
        gold = [frozenset(corpus.ids_by_title.get(title, ())) for title in titles]
    if not gold:
        raise DatasetError(f"{where}: no gold passages")
    return Question(qid, record["question"], _answers(record), tuple(gold), fmt, str(record.get("type", "")))


def parse_questions(data: Any, corpus: Corpus, where: str = "questions") -> list[Question]:
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DatasetError(f"{where}: expected a list of question records")
    return [parse_question(rec, corpus, f"{where}[{i}]") for i, rec in enumerate(data)]


# --- OpenIE cache ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OpenIE:
    entities: tuple[str, ...]
    triples: tuple[tuple[str, str, str], ...]


def clean_triples(raw: Any) -> tuple[tuple[tuple[str, str, str], ...], int]:
    """Well-formed [s, p, o] triples as tuples, and how many were dropped: the server's own rules
    (memserve.extract.clean_triples), so the eval reports what the server will keep."""
    triples, dropped = _clean_triples(list(raw or ()))
    return tuple((t.subject, t.predicate, t.object) for t in triples), dropped


def parse_openie(data: Any, where: str = "openie") -> tuple[dict[str, OpenIE], int]:
    """HippoRAG's ``{"docs": [{passage, extracted_entities, extracted_triples}]}`` -> passage id -> result."""
    docs = data.get("docs") if isinstance(data, Mapping) else None
    if not isinstance(docs, list):
        raise DatasetError(f"{where}: expected an object with a 'docs' list (HippoRAG OpenIE results)")
    out: dict[str, OpenIE] = {}
    dropped = 0
    for i, doc in enumerate(docs):
        passage = doc.get("passage")
        if passage is None:
            if "title" not in doc or "text" not in doc:
                raise DatasetError(f"{where}.docs[{i}]: needs 'passage' or 'title' and 'text'")
            passage = passage_string(doc["title"], doc["text"])
        triples, bad = clean_triples(doc.get("extracted_triples"))
        dropped += bad
        entities = tuple(dict.fromkeys(str(e).strip() for e in doc.get("extracted_entities") or () if str(e).strip()))
        out[passage_id(passage)] = OpenIE(entities, triples)
    return out, dropped


# --- LoCoMo ---------------------------------------------------------------------------------------------------

_SESSION_KEY = re.compile(r"^session_(\d+)$")
_EVIDENCE_SPLIT = re.compile(r"[;,\s]+")


@dataclass(frozen=True)
class Turn:
    dia_id: str
    session: str
    speaker: str
    text: str  # what is indexed: "Speaker: text" (+ the shared image's caption)
    event_time: datetime | None


@dataclass(frozen=True)
class LocomoQuestion:
    question: str
    answer: str
    category: int
    evidence: tuple[str, ...]


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[LocomoQuestion]
    skipped_no_evidence: int = 0
    skipped_category: int = 0
    unparsed_dates: int = 0


def parse_locomo_time(value: str) -> datetime | None:
    """``"1:56 pm on 8 May, 2023"`` -> an aware UTC datetime (LoCoMo gives no zone); None if unparseable."""
    cleaned = " ".join(str(value).split())
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %B %d, %Y"):
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def split_evidence(evidence: Sequence[Any]) -> tuple[str, ...]:
    # A few entries pack several ids into one string ("D8:6; D9:17").
    ids = (part for item in evidence for part in _EVIDENCE_SPLIT.split(str(item)) if part)
    return tuple(dict.fromkeys(ids))


def parse_conversation(record: Any, where: str) -> Conversation:
    if not isinstance(record, Mapping) or not isinstance(record.get("conversation"), Mapping):
        raise DatasetError(f"{where}: expected a LoCoMo conversation with a 'conversation' object")
    conv = record["conversation"]
    sessions = sorted((int(m.group(1)), key) for key in conv if (m := _SESSION_KEY.match(key)))
    turns: list[Turn] = []
    unparsed = 0
    for _n, key in sessions:
        raw_time = conv.get(f"{key}_date_time")
        when = parse_locomo_time(raw_time) if raw_time else None
        unparsed += when is None
        for i, turn in enumerate(conv[key] or ()):
            if not isinstance(turn, Mapping) or "dia_id" not in turn or "text" not in turn:
                raise DatasetError(f"{where}.conversation.{key}[{i}]: a turn needs 'dia_id' and 'text'")
            speaker = str(turn.get("speaker", ""))
            text = f"{speaker}: {turn['text']}" if speaker else str(turn["text"])
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            turns.append(Turn(str(turn["dia_id"]).strip(), key, speaker, text, when))
    questions: list[LocomoQuestion] = []
    no_evidence = skipped = 0
    for qa in record.get("qa") or ():
        category = int(qa.get("category", 0))
        if category == 5 or category not in (1, 2, 3, 4):
            skipped += 1
            continue
        evidence = split_evidence(qa.get("evidence") or ())
        if not evidence:
            no_evidence += 1
            continue
        questions.append(LocomoQuestion(str(qa["question"]), str(qa.get("answer", "")), category, evidence))
    return Conversation(str(record.get("sample_id", where)), turns, questions, no_evidence, skipped, unparsed)


def parse_locomo(data: Any, where: str = "locomo") -> list[Conversation]:
    if not isinstance(data, list):
        raise DatasetError(f"{where}: expected a list of conversations")
    return [parse_conversation(rec, f"{where}[{i}]") for i, rec in enumerate(data)]
