"""The LLM response cache over DuckDB (implements ``memserve.llm.LLMCache``)."""

from __future__ import annotations

from ..domain.llm import CachedResponse
from .db import Database, one_row


class DuckDBLLMCache:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> CachedResponse | None:
        row = self._db.reader().execute(
            "SELECT text, prompt_tokens, completion_tokens, cost_usd FROM llm_cache WHERE key = ?", [key]).fetchone()
        if row is None:
            return None
        return CachedResponse(text=row[0], prompt_tokens=int(row[1]), completion_tokens=int(row[2]),
                              cost_usd=float(row[3]))

    def put(self, key: str, model: str, response: CachedResponse) -> None:
        with self._db.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO llm_cache (key, model, text, prompt_tokens, completion_tokens, cost_usd) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       [key, model, response.text, response.prompt_tokens, response.completion_tokens,
                        response.cost_usd])

    def __len__(self) -> int:
        return int(one_row(self._db.reader().execute("SELECT count(*) FROM llm_cache"))[0])
