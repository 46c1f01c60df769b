"""Scoped API keys: the keys file, its hashed entries, and a ring that reloads when the file changes.

The keys file (setting ``api_keys_file``) is TOML; the server stores no key in the clear, only its SHA-256::

    [[keys]]
    name = "agent-a"                      # for the log; not a secret
    hash = "sha256:9f86d08..."           # `memserve keys hash` or `memserve keys add` writes this
    namespaces = ["agent-a", "team-*"]    # fnmatch globs over namespace names; "*" is every namespace
    scopes = ["read", "write"]            # read, write, admin (independent: admin does not imply read)

API keys are long random tokens (``memserve keys add`` draws 32 bytes), so a fast hash is the right one: a slow
password hash guards low-entropy secrets, and would cost every call milliseconds. The single ``api_key``
setting stays an all-access key beside the file.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import hmac
import logging
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

log = logging.getLogger("memserve.auth")

HASH_PREFIX = "sha256:"


class Scope(enum.Enum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


def hash_key(key: str) -> str:
    """The keys-file form of a key: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "msk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, where it may look and what it may do."""

    name: str
    namespaces: tuple[str, ...]
    scopes: frozenset[Scope]

    @property
    def all_namespaces(self) -> bool:
        return "*" in self.namespaces

    def may_see(self, namespace: str) -> bool:
        return self.all_namespaces or any(fnmatch.fnmatchcase(namespace, p) for p in self.namespaces)

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes


ALL_ACCESS = frozenset(Scope)
OPEN = Principal("anonymous (no keys configured)", ("*",), ALL_ACCESS)


def _entry(raw: object, where: str) -> tuple[str, Principal]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each [[keys]] entry must be a table")
    unknown = set(raw) - {"name", "hash", "namespaces", "scopes"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    name, digest = raw.get("name", ""), raw.get("hash", "")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name is required")
    if not isinstance(digest, str) or not digest.startswith(HASH_PREFIX) or len(digest) != len(HASH_PREFIX) + 64:
        raise ConfigError(f"{where} ({name}): hash must be 'sha256:<64 hex digits>' (see `memserve keys hash`)")
    try:
        bytes.fromhex(digest[len(HASH_PREFIX):])
    except ValueError:
        raise ConfigError(f"{where} ({name}): hash is not hexadecimal") from None
    patterns, scopes = raw.get("namespaces"), raw.get("scopes")
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"{where} ({name}): namespaces must be a non-empty list of glob patterns")
    if not isinstance(scopes, list) or not scopes:
        raise ConfigError(f"{where} ({name}): scopes must be a non-empty list of read, write, admin")
    try:
        parsed = frozenset(Scope(s) for s in scopes)
    except ValueError:
        raise ConfigError(f"{where} ({name}): scopes must be among read, write, admin; got {scopes}") from None
    return digest.lower(), Principal(name, tuple(patterns), parsed)


def parse_keys(text: str, source: str = "keys file") -> dict[str, Principal]:
    """Hash → principal. Raises ConfigError naming the entry at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    entries = data.get("keys", [])
    if not isinstance(entries, list) or set(data) - {"keys"}:
        raise ConfigError(f"{source}: expected only [[keys]] tables")
    out: dict[str, Principal] = {}
    for i, raw in enumerate(entries):
        digest, principal = _entry(raw, f"{source}: keys[{i}]")
        if digest in out:
            raise ConfigError(f"{source}: keys[{i}] ({principal.name}) repeats the hash of {out[digest].name}")
        out[digest] = principal
    return out


class KeyRing:
    """The keys in force. ``lookup`` is called on the event loop; ``reload`` swaps one dict reference."""

    def __init__(self, *, api_key: str = "", keys_file: Path | None = None) -> None:
        self._api_key = api_key
        self.keys_file = keys_file
        self._text: str | None = None
        self._keys: dict[str, Principal] = {}
        self.reloads = 0
        if keys_file is not None:
            self._load(strict=True)

    @property
    def enabled(self) -> bool:
        return bool(self._api_key) or self.keys_file is not None

    def lookup(self, token: str) -> Principal | None:
        if not token:
            return None
        if self._api_key and hmac.compare_digest(token.encode(), self._api_key.encode()):
            return Principal("api_key", ("*",), ALL_ACCESS)
        return self._keys.get(hash_key(token))

    def _load(self, *, strict: bool) -> bool:
        assert self.keys_file is not None
        try:
            text = self.keys_file.read_text(encoding="utf-8")
        except OSError as exc:
            if strict:
                raise ConfigError(f"setting api_keys_file: cannot read {self.keys_file}: {exc}",
                                  field="api_keys_file") from exc
            log.error("keys file %s unreadable (%s); keeping the %d keys in force", self.keys_file, exc,
                      len(self._keys))
            return False
        if text == self._text:
            return False
        try:
            keys = parse_keys(text, str(self.keys_file))
        except ConfigError as exc:
            if strict:
                raise ConfigError(str(exc), field="api_keys_file") from exc
            log.error("keys file rejected, keeping the %d keys in force: %s", len(self._keys), exc)
            self._text = text  # do not log the same error on every poll
            return False
        self._keys, self._text = keys, text
        self.reloads += 1
        log.info("loaded %d API keys from %s", len(keys), self.keys_file)
        return True

    def reload(self) -> bool:
        """Re-read the keys file if its content changed; a bad file keeps the old keys. True if swapped."""
        return self.keys_file is not None and self._load(strict=False)


def entry_toml(name: str, digest: str, namespaces: list[str], scopes: list[str]) -> str:
    """One ``[[keys]]`` table (TOML basic strings accept JSON's escapes for the characters used here)."""
    import json

    for s in scopes:
        Scope(s)
    return (f"[[keys]]\nname = {json.dumps(name)}\nhash = {json.dumps(digest)}\n"
            f"namespaces = [{', '.join(json.dumps(n) for n in namespaces)}]\n"
            f"scopes = [{', '.join(json.dumps(s) for s in scopes)}]\n")
