"""Channel credentials from the clients' ``tls=`` / ``root_certificates=`` / ``client_cert=`` arguments.

Each PEM argument is the bytes themselves or a path to a file holding them. ``tls=True`` alone trusts the
system's roots; ``root_certificates`` (a private CA) or a client certificate imply TLS.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc

Pem = bytes | str | os.PathLike[str] | None


def _pem(value: Pem, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {value}: {exc}") from exc


def channel_credentials(
    *,
    tls: bool,
    root_certificates: Pem,
    client_cert: Pem,
    client_key: Pem,
    credentials: grpc.ChannelCredentials | None,
) -> grpc.ChannelCredentials | None:
    """None for a plaintext channel."""
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together (mTLS)")
    wants_tls = tls or root_certificates is not None or client_cert is not None
    if credentials is not None:
        if wants_tls:
            raise ValueError("pass either credentials= or tls=/root_certificates=/client_cert=, not both")
        return credentials
    if not wants_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(root_certificates, "root_certificates"),
        private_key=_pem(client_key, "client_key"),
        certificate_chain=_pem(client_cert, "client_cert"),
    )
