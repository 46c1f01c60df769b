"""HippoRAG 2's recognition memory: an LLM keeps only the candidate facts relevant to the query.

Used in GRAPH and HYBRID modes when an LLM is configured. A failed or unparseable answer keeps every
candidate (retrieval degrades to the unfiltered graph, never to nothing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from ..errors import LLMError
from ..extract import repair_json
from ..llm import LLMClient
from .graph_retrieval import FactFilter, ScoredFact

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You filter facts for a retrieval system. Given a question and candidate facts as "
    "[subject, predicate, object] triples, keep only the facts that help answer the question, possibly "
    "as one step of a multi-hop chain. Copy kept facts exactly. Answer with JSON: {\"fact\": [[s, p, o], ...]}."
)


def llm_fact_filter(llm: LLMClient, query: str) -> FactFilter:
    def keep(candidates: Sequence[ScoredFact]) -> Sequence[ScoredFact]:
        listed = [[f.subject, f.predicate, f.object] for f in candidates]
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Question: {query}\nCandidate facts: {json.dumps(listed)}"}]
        try:
            answer = repair_json(llm.complete(messages, json_mode=True).text)
        except (LLMError, ValueError) as exc:
            log.warning("fact filter unavailable, keeping all %d facts: %s", len(candidates), exc)
            return candidates
        kept = answer.get("fact") if isinstance(answer, dict) else answer
        if not isinstance(kept, list):
            return candidates
        wanted = {tuple(str(x).strip().lower() for x in t) for t in kept if isinstance(t, list) and len(t) == 3}
        return [f for f in candidates if (f.subject.lower(), f.predicate.lower(), f.object.lower()) in wanted]

    return keep
