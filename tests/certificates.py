"""Certificates for TLS tests, made by the ``openssl`` program (imported as ``certificates``).

One call makes a small PKI in a folder: a CA, a server certificate for 127.0.0.1 and
localhost, and a client certificate, all signed by that CA. A second PKI in another folder gives
certificates the first CA never signed. Keys are P-256, so making them takes milliseconds.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()[-400:]}")


def _key(path: Path) -> None:
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.name,
        cwd=path.parent,
    )
    path.chmod(0o600)


def _signed(pki: Pki, name: str, *, subject: str, extensions: str) -> None:
    folder = pki.folder
    _key(folder / f"{name}.key")
    _openssl(
        "req",
        "-new",
        "-key",
        f"{name}.key",
        "-subj",
        subject,
        "-out",
        f"{name}.csr",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        pki.ca.name,
        "-CAkey",
        pki.ca_key.name,
        "-CAcreateserial",
        "-days",
        DAYS,
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=folder,
    )


def make_pki(folder: Path, *, name: str = "rescue-test") -> Pki:
    """A CA with a server certificate (127.0.0.1, localhost) and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)
    _key(pki.ca_key)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        pki.ca_key.name,
        "-subj",
        f"/CN={name} CA",
        "-days",
        DAYS,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        pki.ca.name,
        cwd=folder,
    )
    common = (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    _signed(
        pki,
        "server",
        subject="/CN=rescue-webhook",
        extensions=common
        + "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    _signed(
        pki,
        "client",
        subject="/CN=alertmanager",
        extensions=common + "extendedKeyUsage=clientAuth\n",
    )
    return pki
