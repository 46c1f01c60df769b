"""The security surface of the command line and of a real `memserve serve` process: `memserve keys`, the
client flags for TLS and keys, SIGHUP reloading the keys file, and the refusal to serve beyond loopback
unauthenticated."""

from __future__ import annotations

import signal
import subprocess
import sys

import grpc
import pytest
from memserve_client import MemoryClient, UnauthenticatedError

from memserve.server.keys import hash_key, parse_keys
from tests.integration.test_cli import memserve
from tests.support.certs import CA
from tests.support.gates import wait_until
from tests.support.server import REPO, ServerProcess


def test_keys_hash_reads_the_key_from_stdin():
    out = subprocess.run([sys.executable, "-m", "memserve", "keys", "hash"], input="s3cret\n", cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == hash_key("s3cret")


def test_keys_add_appends_an_entry_the_server_accepts(tmp_path):
    keys_file = tmp_path / "keys.toml"
    first = memserve("keys", "add", str(keys_file), "--name", "a", "--namespace", "team-*", "--scope", "read",
                     "--scope", "write").stdout.strip()
    second = memserve("keys", "add", str(keys_file), "--name", "b", "--namespace", "*", "--scope",
                      "admin").stdout.strip()
    assert first != second and first not in keys_file.read_text()  # stored hashed, never in the clear
    keys = parse_keys(keys_file.read_text())
    assert {p.name for p in keys.values()} == {"a", "b"}
    assert keys[hash_key(first)].namespaces == ("team-*",)
    bad = memserve("keys", "add", str(keys_file), "--name", "c", "--namespace", "x", "--scope", "root", check=False)
    assert bad.returncode != 0 and len(parse_keys(keys_file.read_text())) == 2


def test_client_commands_document_the_security_flags():
    text = memserve("query", "--help").stdout
    for flag in ("--api-key", "--tls", "--tls-ca", "--tls-cert", "--tls-key"):
        assert flag in text


def test_sighup_reloads_the_keys_file(tmp_path):
    keys_file = tmp_path / "keys.toml"
    memserve("keys", "add", str(keys_file), "--name", "old", "--namespace", "*", "--scope", "read")
    with ServerProcess(tmp_path / "data", settings={"api_keys_file": str(keys_file), "api_keys_poll_s": "0"}) as srv:
        new = memserve("keys", "add", str(keys_file), "--name", "new", "--namespace", "*",
                       "--scope", "read").stdout.strip()
        with MemoryClient(srv.target, timeout=30, max_retries=0, api_key=new) as client:
            with pytest.raises(UnauthenticatedError):  # polling is off: not seen yet
                client.list_namespaces()
            srv.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
            wait_until(lambda: "loaded 2 API keys" in srv.log(), "the server to reload on SIGHUP")
            assert client.list_namespaces().items == ()


def test_cli_client_speaks_tls_with_a_key(tmp_path):
    ca = CA(tmp_path, "cli")
    pair, client_pair = ca.issue("server", server=True), ca.issue("client", server=False)
    settings = {"tls_cert_file": str(pair.cert), "tls_key_file": str(pair.key), "tls_client_ca_file": str(ca.path),
                "api_key": "cli-secret"}
    creds = grpc.ssl_channel_credentials(ca.pem, client_pair.key.read_bytes(), client_pair.cert.read_bytes())
    with ServerProcess(tmp_path / "data", settings=settings, channel_credentials=creds) as srv:
        tls = ["--server", srv.target, "--tls-ca", str(ca.path), "--tls-cert", str(client_pair.cert),
               "--tls-key", str(client_pair.key)]
        denied = memserve("stats", *tls, check=False)
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
        assert '"namespaces": []' in memserve("stats", *tls, "--api-key", "cli-secret").stdout
        plain = memserve("stats", "--server", srv.target, "--api-key", "cli-secret", "--timeout", "5", check=False)
        assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr
        assert "TLS" in srv.log()


def test_serving_beyond_loopback_unauthenticated_is_refused_in_one_line(tmp_path):
    result = memserve("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"),
                      "--set", "embedding_model=hash:64", check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "allow_insecure_remote" in lines[0] and "api_keys_file" in lines[0]


def test_loopback_hosts_need_no_key():
    from memserve.config import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "memserve.example.com"))


def test_health_command_needs_no_key_and_speaks_tls(tmp_path):
    ca = CA(tmp_path, "health")
    pair = ca.issue("server", server=True)
    settings = {"tls_cert_file": str(pair.cert), "tls_key_file": str(pair.key), "api_key": "k"}
    creds = grpc.ssl_channel_credentials(ca.pem)
    with ServerProcess(tmp_path / "data", settings=settings, channel_credentials=creds) as srv:
        ok = memserve("health", "--server", srv.target, "--tls-ca", str(ca.path))
        assert ok.stdout.strip() == "SERVING"
        down = memserve("health", "--server", srv.target, "--timeout", "5", check=False)  # plaintext
        assert down.returncode == 1
