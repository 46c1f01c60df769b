"""TLS and mTLS through the real server and SDK, with throwaway CAs made in the test."""

from __future__ import annotations

import pytest
from memserve_client import MemoryClient, UnavailableError

from tests.integration.test_live_serving import Running
from tests.support.certs import CA


@pytest.fixture()
def pki(tmp_path):
    ca, other = CA(tmp_path, "good"), CA(tmp_path, "rogue")
    return {"ca": ca, "other": other, "server": ca.issue("server", server=True),
            "client": ca.issue("client", server=False), "rogue_client": other.issue("client", server=False)}


@pytest.fixture()
def tls_server(tmp_path, pki):
    servers: list[Running] = []

    def start(**overrides) -> Running:
        servers.append(Running(tmp_path / f"s{len(servers)}", tls_cert_file=str(pki["server"].cert),
                               tls_key_file=str(pki["server"].key), **overrides))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _roundtrip(client: MemoryClient) -> None:
    ids = client.write("tls", ["over an encrypted channel"]).ids
    assert client.get("tls", ids[0]).text == "over an encrypted channel"


def test_tls_serves_a_client_that_trusts_the_ca(tls_server, pki):
    srv = tls_server()
    with MemoryClient(srv.target, timeout=30, root_certificates=pki["ca"].pem) as client:
        _roundtrip(client)
    # a path works as well as the bytes
    with MemoryClient(srv.target, timeout=30, root_certificates=str(pki["ca"].path)) as client:
        assert client.stats("tls").namespaces[0].episode_count == 1


def test_a_plaintext_client_is_refused(tls_server):
    srv = tls_server()
    with MemoryClient(srv.target, timeout=5, max_retries=0) as client, pytest.raises(UnavailableError):
        client.stats()


def test_a_client_trusting_another_ca_is_refused(tls_server, pki):
    srv = tls_server()
    with MemoryClient(srv.target, timeout=5, max_retries=0, root_certificates=pki["other"].pem) as client, \
            pytest.raises(UnavailableError):
        client.stats()


def test_mtls_requires_a_client_certificate_from_the_client_ca(tls_server, pki):
    srv = tls_server(tls_client_ca_file=str(pki["ca"].path))
    with MemoryClient(srv.target, timeout=5, max_retries=0, root_certificates=pki["ca"].pem) as client, \
            pytest.raises(UnavailableError):
        client.stats()  # no client certificate
    with MemoryClient(srv.target, timeout=5, max_retries=0, root_certificates=pki["ca"].pem,
                      client_cert=pki["rogue_client"].cert, client_key=pki["rogue_client"].key) as client, \
            pytest.raises(UnavailableError):
        client.stats()  # a certificate some other CA signed
    with MemoryClient(srv.target, timeout=30, root_certificates=pki["ca"].pem, client_cert=pki["client"].cert,
                      client_key=pki["client"].key) as client:
        _roundtrip(client)


async def test_the_async_client_speaks_mtls(tls_server, pki):
    from memserve_client.aio import AsyncMemoryClient

    srv = tls_server(tls_client_ca_file=str(pki["ca"].path))
    async with AsyncMemoryClient(srv.target, timeout=30, root_certificates=pki["ca"].pem,
                                 client_cert=str(pki["client"].cert), client_key=str(pki["client"].key)) as client:
        await client.write("tls", ["async over mTLS"])
        assert (await client.stats("tls")).namespaces[0].episode_count == 1


def test_client_tls_arguments_are_checked(pki):
    with pytest.raises(ValueError, match="client_key"):
        MemoryClient("127.0.0.1:1", client_cert=pki["client"].cert)
    with pytest.raises(ValueError, match="cannot read"):
        MemoryClient("127.0.0.1:1", root_certificates="/nonexistent/ca.pem")
