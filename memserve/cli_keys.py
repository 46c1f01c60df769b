"""`memserve keys`: produce entries for the scoped API keys file (format in memserve/server/keys.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import ConfigError
from .server.keys import entry_toml, hash_key, new_key, parse_keys


def print_hash(key: str | None) -> int:
    if key is None:
        key = sys.stdin.readline().strip()
    if not key:
        print("memserve: no key given (pass --key or one line on stdin)", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def add_key(path: Path, name: str, namespaces: list[str], scopes: list[str]) -> int:
    key = new_key()
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    text = old + ("\n" if old and not old.endswith("\n\n") else "") + entry_toml(name, hash_key(key), namespaces,
                                                                               sorted(set(scopes)))
    try:
        parse_keys(text, str(path))  # never write a file the server would reject
    except ConfigError as exc:
        print(f"memserve: {exc}", file=sys.stderr)
        return 2
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)  # atomic: a server polling the file never reads half an entry
    print(key)
    print(f"added key {name!r} to {path}; the key is shown only now", file=sys.stderr)
    return 0
