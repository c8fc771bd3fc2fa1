from __future__ import annotations

import hashlib
import ipaddress
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wtframe.certs import (
    Certificate,
    certificate_fingerprint,
    generate_certificate,
    load_certificate,
)
from wtframe.exceptions import ConfigurationError

NOW = datetime(2030, 5, 17, 12, 30, 45, tzinfo=UTC)


@pytest.fixture(scope="module")
def cert() -> Certificate:
    return generate_certificate(now=NOW)


def parse(cert: Certificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.cert_pem)


def test_generated_certificate_is_x509v3_ecdsa_p256(cert: Certificate) -> None:
    parsed = parse(cert)
    assert parsed.version is x509.Version.v3
    public_key = parsed.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert isinstance(public_key.curve, ec.SECP256R1)
    key = serialization.load_pem_private_key(cert.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == public_key.public_numbers()


def test_generated_certificate_is_self_signed_leaf(cert: Certificate) -> None:
    parsed = parse(cert)
    assert parsed.issuer == parsed.subject
    parsed.verify_directly_issued_by(parsed)
    constraints = parsed.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False


def test_default_subject_alternative_names(cert: Certificate) -> None:
    san = parse(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_custom_hostnames_split_into_dns_and_ip() -> None:
    cert = generate_certificate(["example.test", "10.0.0.7", "fe80::1", "wt.example.test"])
    parsed = parse(cert)
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test", "wt.example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("fe80::1"),
    ]
    common_names = parsed.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert [attribute.value for attribute in common_names] == ["example.test"]


def test_validity_starts_an_hour_early_and_lasts_days(cert: Certificate) -> None:
    parsed = parse(cert)
    assert cert.not_before == parsed.not_valid_before_utc == NOW - timedelta(hours=1)
    assert cert.not_after == parsed.not_valid_after_utc == NOW + timedelta(days=10)
    assert cert.not_after - cert.not_before <= timedelta(days=14)


def test_default_now_is_inside_the_window() -> None:
    cert = generate_certificate(days=1)
    now = datetime.now(UTC)
    assert cert.not_before < now < cert.not_after


def test_naive_now_is_read_as_utc() -> None:
    cert = generate_certificate(days=2, now=NOW.replace(tzinfo=None))
    assert cert.not_before == NOW - timedelta(hours=1)


def test_longest_allowed_span_is_exactly_fourteen_days() -> None:
    cert = generate_certificate(days=14 - 1 / 24, now=NOW)
    assert cert.not_after - cert.not_before == timedelta(days=14)


@pytest.mark.parametrize("days", [14, 13.97, 30])
def test_spans_over_fourteen_days_are_refused(days: float) -> None:
    with pytest.raises(ConfigurationError, match="14 days"):
        generate_certificate(days=days)


@pytest.mark.parametrize("days", [0, -1])
def test_non_positive_days_are_refused(days: float) -> None:
    with pytest.raises(ConfigurationError, match="positive"):
        generate_certificate(days=days)


@pytest.mark.parametrize("hostnames", [[], [""], ["bad name é"]])
def test_unusable_hostnames_are_refused(hostnames: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        generate_certificate(hostnames)


def test_single_string_hostname_is_one_name() -> None:
    parsed = parse(generate_certificate("example.test"))
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test"]


def test_fingerprint_is_sha256_of_der(cert: Certificate) -> None:
    der = parse(cert).public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der)
    assert cert.sha256 == digest.digest()
    assert cert.fingerprint == digest.hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", cert.fingerprint)
    assert certificate_fingerprint(cert.cert_pem) == cert.fingerprint
    assert certificate_fingerprint(der) == cert.fingerprint


def test_fingerprint_with_colons(cert: Certificate) -> None:
    pairs = cert.fingerprint_colons.split(":")
    assert len(pairs) == 32
    assert all(re.fullmatch(r"[0-9A-F]{2}", pair) for pair in pairs)
    assert "".join(pairs).lower() == cert.fingerprint


def test_different_certificates_have_different_fingerprints(cert: Certificate) -> None:
    assert generate_certificate(now=NOW).fingerprint != cert.fingerprint


@pytest.mark.parametrize("garbage", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n"])
def test_fingerprint_of_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(ConfigurationError):
        certificate_fingerprint(garbage)


def test_js_snippet_pins_the_hash(cert: Certificate) -> None:
    snippet = cert.js_snippet("https://localhost:4433/echo")
    match = re.fullmatch(
        r'new WebTransport\("https://localhost:4433/echo", \{ serverCertificateHashes: '
        r'\[\{ algorithm: "sha-256", value: new Uint8Array\(\[([0-9, ]+)\]\) \}\] \}\)',
        snippet,
    )
    assert match is not None
    assert bytes(int(value) for value in match.group(1).split(", ")) == cert.sha256


def test_js_snippet_quotes_the_url(cert: Certificate) -> None:
    snippet = cert.js_snippet('https://localhost:4433/a"b')
    assert snippet.startswith(r'new WebTransport("https://localhost:4433/a\"b", ')


def test_write_and_load_round_trip(cert: Certificate, tmp_path: Path) -> None:
    cert_path, key_path = cert.write(tmp_path / "nested" / "certs")
    assert cert_path == tmp_path / "nested" / "certs" / "cert.pem"
    assert key_path == tmp_path / "nested" / "certs" / "key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_certificate(cert_path, key_path) == cert


def test_write_tightens_an_existing_key_file(cert: Certificate, tmp_path: Path) -> None:
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(b"old")
    key_path.chmod(0o644)
    cert.write(tmp_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes() == cert.key_pem


def test_load_refuses_a_key_of_another_certificate(cert: Certificate, tmp_path: Path) -> None:
    cert_path, _ = cert.write(tmp_path / "one")
    _, other_key = generate_certificate(now=NOW).write(tmp_path / "two")
    with pytest.raises(ConfigurationError, match="does not hold the key"):
        load_certificate(cert_path, other_key)


def test_load_refuses_garbage(cert: Certificate, tmp_path: Path) -> None:
    cert_path, key_path = cert.write(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"junk")
    with pytest.raises(ConfigurationError):
        load_certificate(junk, key_path)
    with pytest.raises(ConfigurationError):
        load_certificate(cert_path, junk)


def test_aioquic_accepts_written_files(cert: Certificate, tmp_path: Path) -> None:
    cert_path, key_path = cert.write(tmp_path)
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(cert_path, key_path)
    assert config.certificate is not None
    assert config.certificate.public_bytes(serialization.Encoding.DER) == cert.der
    assert config.private_key is not None
