"""Certificates for the TLS test servers, made by trustme and written to a folder.

One trusted CA issues the server certificates (for `localhost` and `127.0.0.1`) and a
client certificate; the variants a client must refuse are made on request.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import trustme

CLIENT_SUBJECT = "O=sipcurl tests,OU=client,CN=sipcurl test client"  # as Recorded shows it


class TlsMaterial:
    """A trusted CA (`ca_file`), a client certificate it issued, and server contexts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = trustme.CA()
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        client = self.ca.issue_cert(
            "client@example.test",
            common_name="sipcurl test client",
            organization_name="sipcurl tests",
            organization_unit_name="client",
        )
        self.client_subject = CLIENT_SUBJECT
        self.client_cert = folder / "client.pem"
        self.client_key = folder / "client.key"
        client.cert_chain_pems[0].write_to_path(str(self.client_cert))
        client.private_key_pem.write_to_path(str(self.client_key))
        # Both in one file, for clients that take a single PEM.
        self.client_pem = folder / "client-with-key.pem"
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_pem))
        self._untrusted: trustme.CA | None = None

    def server_context(
        self,
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        untrusted: bool = False,
        expired: bool = False,
        require_client_cert: bool = False,
    ) -> ssl.SSLContext:
        """A server context; `hosts` other than ours gives a wrong-name certificate."""
        if untrusted and self._untrusted is None:
            self._untrusted = trustme.CA()
        ca = self._untrusted if untrusted and self._untrusted else self.ca
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            cert = ca.issue_cert(
                *hosts,
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            )
        else:
            cert = ca.issue_cert(*hosts)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx
