"""The TLS files are checked before the webhook starts, and each mistake is named in a sentence."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from certificates import Pki, make_pki

from rescue.webhook.server import TLSFiles, WebhookConfigError, tls_from


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("stranger"), name="stranger")


def test_a_matching_certificate_and_key_with_a_client_ca_are_accepted(pki: Pki) -> None:
    files = tls_from(
        cert_file=str(pki.server_cert), key_file=str(pki.server_key), client_ca_file=str(pki.ca)
    )
    assert files == TLSFiles(
        cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca)
    )


def test_no_tls_flag_means_plain_http() -> None:
    assert tls_from(cert_file=None, key_file=None, client_ca_file=None) is None


def test_a_key_of_another_certificate_is_named_as_not_belonging_to_it(
    pki: Pki, stranger: Pki
) -> None:
    with pytest.raises(WebhookConfigError) as caught:
        tls_from(
            cert_file=str(pki.server_cert), key_file=str(stranger.server_key), client_ca_file=None
        )
    assert str(caught.value) == (
        f"the TLS key {stranger.server_key} does not belong to the certificate {pki.server_cert}"
    )


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("cert", "the TLS certificate file {path} does not exist"),
        ("key", "the TLS key file {path} does not exist"),
        ("client_ca", "the client CA file {path} does not exist"),
    ],
)
def test_a_missing_file_is_named(pki: Pki, tmp_path: Path, which: str, expected: str) -> None:
    files = {"cert": pki.server_cert, "key": pki.server_key, "client_ca": pki.ca}
    files[which] = tmp_path / "nowhere.pem"
    with pytest.raises(WebhookConfigError) as caught:
        tls_from(
            cert_file=str(files["cert"]),
            key_file=str(files["key"]),
            client_ca_file=str(files["client_ca"]),
        )
    assert str(caught.value) == expected.format(path=files[which])


def test_an_unreadable_file_is_named_with_the_reason(pki: Pki, tmp_path: Path) -> None:
    # A folder where a file should be: unreadable even for root, unlike a chmod.
    with pytest.raises(WebhookConfigError) as caught:
        tls_from(cert_file=str(pki.server_cert), key_file=str(tmp_path), client_ca_file=None)
    assert str(caught.value) == f"cannot read the TLS key file {tmp_path}: Is a directory"


def test_a_certificate_file_holding_a_key_is_blamed_on_the_certificate(pki: Pki) -> None:
    with pytest.raises(WebhookConfigError, match="holds no PEM certificate"):
        tls_from(cert_file=str(pki.server_key), key_file=str(pki.server_key), client_ca_file=None)


def test_a_key_file_holding_no_key_or_an_encrypted_one_is_refused(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        [
            *("openssl", "pkey", "-aes256", "-passout", "pass:phrase"),
            *("-in", str(pki.server_key), "-out", str(encrypted)),
        ],
        check=True,
        capture_output=True,
    )
    for key in (garbage, encrypted):
        # Never a passphrase prompt: a server has no one to type it.
        with pytest.raises(WebhookConfigError, match="holds no usable PEM private key"):
            tls_from(cert_file=str(pki.server_cert), key_file=str(key), client_ca_file=None)


def test_a_client_ca_file_without_a_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    empty = tmp_path / "ca.pem"
    empty.write_text("\n")
    with pytest.raises(WebhookConfigError) as caught:
        tls_from(
            cert_file=str(pki.server_cert), key_file=str(pki.server_key), client_ca_file=str(empty)
        )
    assert str(caught.value) == f"the client CA file {empty} holds no PEM certificate"


@pytest.mark.parametrize(
    ("cert", "key", "client_ca"),
    [(True, False, False), (False, True, False), (False, False, True)],
)
def test_certificate_and_key_go_together(pki: Pki, cert: bool, key: bool, client_ca: bool) -> None:
    with pytest.raises(WebhookConfigError, match="--tls-cert and --tls-key go together"):
        tls_from(
            cert_file=str(pki.server_cert) if cert else None,
            key_file=str(pki.server_key) if key else None,
            client_ca_file=str(pki.ca) if client_ca else None,
        )
