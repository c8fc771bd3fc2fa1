"""Short-lived self-signed certificates for local WebTransport development.

Browsers accept a self-signed certificate without any flags when the page pins it with the
`serverCertificateHashes` option of the `WebTransport` constructor. They only do so for an
X.509v3 certificate with an ECDSA P-256 key whose whole validity span is at most 14 days and
contains the current time. [`generate_certificate`][wtframe.certs.generate_certificate]
makes such certificates:

    cert = generate_certificate()
    cert.write("certs")
    print(cert.js_snippet("https://localhost:4433/chat"))
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wtframe.exceptions import ConfigurationError

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_HOSTNAMES",
    "MAX_VALIDITY",
    "Certificate",
    "certificate_fingerprint",
    "generate_certificate",
    "load_certificate",
]

MAX_VALIDITY = timedelta(days=14)
"""The longest validity span browsers accept for a certificate pinned by hash."""

CLOCK_SKEW = timedelta(hours=1)
"""How far before "now" a generated certificate becomes valid."""

DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
"""The names a generated certificate covers when none are given."""


@dataclass(frozen=True)
class Certificate:
    """A certificate and its private key, both PEM encoded.

    Attributes:
        cert_pem: The certificate (possibly followed by its chain) in PEM form.
        key_pem: The unencrypted private key in PEM (PKCS#8) form.
        not_before: When the certificate becomes valid (UTC).
        not_after: When the certificate expires (UTC).
    """

    cert_pem: bytes
    key_pem: bytes
    not_before: datetime
    not_after: datetime

    @property
    def der(self) -> bytes:
        """The leaf certificate in DER form."""
        return _leaf(self.cert_pem).public_bytes(serialization.Encoding.DER)

    @property
    def sha256(self) -> bytes:
        """The SHA-256 digest of the leaf certificate's DER encoding."""
        return hashlib.sha256(self.der).digest()

    @property
    def fingerprint(self) -> str:
        """The SHA-256 fingerprint as 64 lowercase hexadecimal digits."""
        return self.sha256.hex()

    @property
    def fingerprint_colons(self) -> str:
        """The SHA-256 fingerprint as uppercase hex pairs joined by colons (`AB:CD:...`)."""
        return ":".join(f"{byte:02X}" for byte in self.sha256)

    def js_snippet(self, url: str) -> str:
        """Return JavaScript that opens a WebTransport session pinned to this certificate.

        Args:
            url: The `https://` URL of the WebTransport endpoint.

        Returns:
            A `new WebTransport(...)` expression passing the certificate's SHA-256 hash in
            `serverCertificateHashes`.
        """
        values = ", ".join(str(byte) for byte in self.sha256)
        return (
            f"new WebTransport({json.dumps(url)}, {{ serverCertificateHashes: "
            f'[{{ algorithm: "sha-256", value: new Uint8Array([{values}]) }}] }})'
        )

    def write(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write `cert.pem` and `key.pem` into a directory, creating it if needed.

        The key file is readable by its owner only (mode 0600).

        Args:
            directory: Where to write the files.

        Returns:
            The paths of the certificate file and the key file.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        cert_path = folder / "cert.pem"
        key_path = folder / "key.pem"
        cert_path.write_bytes(self.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as key_file:
            os.fchmod(key_file.fileno(), 0o600)
            key_file.write(self.key_pem)
        return cert_path, key_path


def generate_certificate(
    hostnames: Sequence[str] = DEFAULT_HOSTNAMES,
    *,
    days: float = 10,
    now: datetime | None = None,
) -> Certificate:
    """Create a self-signed ECDSA P-256 certificate that browsers accept by hash.

    The certificate becomes valid one hour before `now` (to tolerate clock skew) and expires
    `days` after `now`. Its subject alternative names hold every entry of `hostnames`, as an
    IP address when it parses as one and as a DNS name otherwise.

    Args:
        hostnames: The names the certificate covers; the first one (cut to 64 characters)
            is also the subject's common name.
        days: How long the certificate stays valid after `now`.
        now: The reference time; the current time when omitted. A naive value is read as UTC.

    Returns:
        The new certificate and its private key.

    Raises:
        ConfigurationError: If `hostnames` is empty, `days` is not positive, or the whole
            validity span (including the hour of clock skew) exceeds 14 days.
    """
    if isinstance(hostnames, str):
        hostnames = (hostnames,)
    if not hostnames:
        raise ConfigurationError("a certificate needs at least one hostname")
    if not days > 0:
        raise ConfigurationError(f"days must be positive, not {days}")
    limit = (MAX_VALIDITY - CLOCK_SKEW) / timedelta(days=1)
    if days > limit:
        raise ConfigurationError(
            f"browsers refuse pinned certificates valid for more than 14 days; "
            f"days must be at most {limit:.4f} (one hour is added for clock skew), not {days}"
        )
    moment = _utc(now if now is not None else datetime.now(UTC))
    not_before = moment - CLOCK_SKEW
    not_after = moment + timedelta(days=days)

    alternative_names = x509.SubjectAlternativeName(_general_names(hostnames))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(alternative_names, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def load_certificate(
    certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str]
) -> Certificate:
    """Read a certificate and its unencrypted private key from PEM files.

    Args:
        certfile: The PEM certificate file; the first certificate in it is the leaf.
        keyfile: The PEM private key file.

    Returns:
        The certificate and key, with the leaf's validity window.

    Raises:
        ConfigurationError: If a file holds no usable PEM data or the key does not belong to
            the certificate.
    """
    cert_pem = Path(certfile).read_bytes()
    key_pem = Path(keyfile).read_bytes()
    leaf = _leaf(cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(
            f"{os.fspath(keyfile)!s}: cannot read private key: {exc}"
        ) from exc
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise ConfigurationError(
            f"{os.fspath(keyfile)!s} does not hold the key of {os.fspath(certfile)!s}"
        )
    return Certificate(
        cert_pem=cert_pem,
        key_pem=key_pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


def certificate_fingerprint(cert_pem_or_der: bytes) -> str:
    """Return the SHA-256 fingerprint of a certificate as 64 lowercase hex digits.

    Args:
        cert_pem_or_der: A certificate in PEM form (the first certificate counts) or DER form.

    Returns:
        The hex digest of SHA-256 over the certificate's DER encoding.

    Raises:
        ConfigurationError: If the bytes are not a certificate.
    """
    if b"-----BEGIN" in cert_pem_or_der:
        der = _leaf(cert_pem_or_der).public_bytes(serialization.Encoding.DER)
    else:
        try:
            x509.load_der_x509_certificate(cert_pem_or_der)
        except ValueError as exc:
            raise ConfigurationError(f"not a DER certificate: {exc}") from exc
        der = cert_pem_or_der
    return hashlib.sha256(der).hexdigest()


def _leaf(cert_pem: bytes) -> x509.Certificate:
    """Parse the first certificate of a PEM bundle."""
    try:
        certificates = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise ConfigurationError(f"not a PEM certificate: {exc}") from exc
    return certificates[0]


def _utc(moment: datetime) -> datetime:
    """Return an aware UTC datetime with whole seconds, as X.509 stores them."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _general_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    """Turn host names and IP literals into subject alternative names."""
    names: list[x509.GeneralName] = []
    for host in hostnames:
        if not host:
            raise ConfigurationError("hostnames cannot be empty strings")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            try:
                names.append(x509.DNSName(host))
            except (ValueError, UnicodeError) as exc:
                raise ConfigurationError(f"not a usable hostname: {host!r}") from exc
    return names
