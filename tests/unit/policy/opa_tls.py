"""TLS material for the OPA server tests: a CA, a server certificate for 127.0.0.1, a client, a stranger CA."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.integration.certs import issue_client, issue_server, make_ca, write_ca


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # signed the server's and the client's certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # signed nothing the server or client uses


def make_tls_files(directory: Path) -> TlsFiles:
    ca = make_ca("opa-test-ca")
    server_cert, server_key = issue_server(directory, "server", ca)
    client_cert, client_key = issue_client(directory, "client", ca, "securekube-apiserver")
    return TlsFiles(ca=Path(write_ca(directory, "ca", ca)), server_cert=Path(server_cert), server_key=Path(server_key),
                    client_cert=Path(client_cert), client_key=Path(client_key),
                    stranger_ca=Path(write_ca(directory, "stranger-ca", make_ca("stranger-ca"))))
