"""The keys file: parsing, hashing, patterns, and what a bad file does."""

from __future__ import annotations

import pytest

from memserve.errors import ConfigError
from memserve.server.keys import KeyRing, Scope, entry_toml, hash_key, parse_keys


def test_entries_parse_to_principals_by_hash():
    text = entry_toml("a", hash_key("ka"), ["team-*", "shared"], ["read", "write"])
    (digest, principal), = parse_keys(text).items()
    assert digest == hash_key("ka") and digest.startswith("sha256:") and len(digest) == 71
    assert principal.scopes == {Scope.READ, Scope.WRITE} and not principal.has(Scope.ADMIN)
    assert principal.may_see("team-x") and principal.may_see("shared") and not principal.may_see("team")
    assert not principal.may_see("sharedx") and not principal.all_namespaces


@pytest.mark.parametrize("entry, message", [
    ('name = "a"\nhash = "md5:abc"\nnamespaces = ["*"]\nscopes = ["read"]', "hash must be"),
    ('name = "a"\nhash = "sha256:' + "z" * 64 + '"\nnamespaces = ["*"]\nscopes = ["read"]', "not hexadecimal"),
    ('name = "a"\nhash = "sha256:' + "0" * 64 + '"\nnamespaces = []\nscopes = ["read"]', "namespaces"),
    ('name = "a"\nhash = "sha256:' + "0" * 64 + '"\nnamespaces = ["*"]\nscopes = ["root"]', "scopes must be"),
    ('name = "a"\nhash = "sha256:' + "0" * 64 + '"\nnamespaces = ["*"]\nscopes = ["read"]\nkey = "x"', "unknown"),
    ('hash = "sha256:' + "0" * 64 + '"\nnamespaces = ["*"]\nscopes = ["read"]', "name is required"),
])
def test_a_bad_entry_is_named(entry, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_keys("[[keys]]\n" + entry + "\n", "k.toml")
    assert "keys[0]" in str(err.value)


def test_a_repeated_hash_is_refused():
    one = entry_toml("a", hash_key("same"), ["*"], ["read"])
    with pytest.raises(ConfigError, match="repeats"):
        parse_keys(one + one.replace('"a"', '"b"'))


def test_api_key_is_all_access_and_unknown_tokens_are_nobody(tmp_path):
    keys_file = tmp_path / "k.toml"
    keys_file.write_text(entry_toml("r", hash_key("kr"), ["x-*"], ["read"]))
    ring = KeyRing(api_key="root", keys_file=keys_file)
    assert ring.enabled and ring.lookup("root").all_namespaces and ring.lookup("root").scopes == set(Scope)
    assert ring.lookup("kr").name == "r"
    assert ring.lookup("") is None and ring.lookup("kr ") is None and ring.lookup("nope") is None
    assert not KeyRing().enabled


def test_a_bad_file_fails_start_up_but_not_a_reload(tmp_path):
    keys_file = tmp_path / "k.toml"
    keys_file.write_text("not toml [")
    with pytest.raises(ConfigError, match=r"api_keys_file|k\.toml"):
        KeyRing(keys_file=keys_file)
    keys_file.write_text(entry_toml("r", hash_key("kr"), ["*"], ["read"]))
    ring = KeyRing(keys_file=keys_file)
    keys_file.write_text("not toml [")
    assert ring.reload() is False and ring.lookup("kr") is not None
    keys_file.unlink()
    assert ring.reload() is False and ring.lookup("kr") is not None
