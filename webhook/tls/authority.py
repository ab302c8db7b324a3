"""A small certificate authority: a CA and serving certificates signed by it.

The Kubernetes API server calls the webhook over TLS and trusts exactly the CA
given in the webhook configuration's ``caBundle``, so the gate needs its own CA
(not a lone self-signed leaf): the serving certificate can then be renewed often
while the bundle — which must be patched into the cluster — changes rarely.

Certificates follow what strict verifiers (Go's crypto/x509, Python's
``VERIFY_X509_STRICT``) expect: names only in subjectAltName, critical basic
constraints and key usage, subject/authority key identifiers on both.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyAlgorithm = Literal["ecdsa-p256", "rsa-2048"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_CA_VALIDITY = datetime.timedelta(days=3650)
DEFAULT_SERVING_VALIDITY = datetime.timedelta(days=365)
#: Certificates start this far in the past, so a peer whose clock is slightly behind accepts them.
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM-encoded (key: unencrypted PKCS#8)."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def private_key(self) -> PrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            raise TypeError(f"unsupported key type {type(key).__name__}")
        return key

    def matches(self) -> bool:
        """Whether the key belongs to the certificate (a half-written or mixed-up pair does not)."""
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        try:
            return self.certificate.public_key().public_bytes(*spki) == self.private_key.public_key().public_bytes(*spki)
        except (ValueError, TypeError):
            return False


def _new_key(algorithm: KeyAlgorithm) -> PrivateKey:
    if algorithm == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key algorithm {algorithm!r}: expected ecdsa-p256 or rsa-2048")


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _now(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def split_hosts(hosts: Iterable[str]) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """Split host names into DNS names and IP addresses, dropping duplicates, keeping order."""
    dns_names: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for host in hosts:
        host = host.strip()
        if not host:
            continue
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if host.lower() not in dns_names:
                dns_names.append(host.lower())
        else:
            if ip not in ips:
                ips.append(ip)
    return dns_names, ips


def generate_ca(
    *,
    common_name: str = "safety-gate CA",
    validity: datetime.timedelta = DEFAULT_CA_VALIDITY,
    key_algorithm: KeyAlgorithm = "ecdsa-p256",
    now: datetime.datetime | None = None,
) -> KeyPair:
    """A self-signed CA allowed to sign end-entity certificates only (path length 0)."""
    start = _now(now)
    key = _new_key(key_algorithm)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=_key_pem(key))


def issue_serving_cert(
    *,
    ca: KeyPair,
    hosts: Iterable[str],
    common_name: str | None = None,
    validity: datetime.timedelta = DEFAULT_SERVING_VALIDITY,
    key_algorithm: KeyAlgorithm = "ecdsa-p256",
    now: datetime.datetime | None = None,
) -> KeyPair:
    """A TLS server certificate for ``hosts`` (DNS names and/or IP addresses) signed by ``ca``.

    The certificate never outlives its CA: a chain whose root has expired fails anyway,
    and an honest ``not_after`` makes renewal checks right.
    """
    dns_names, ips = split_hosts(hosts)
    if not dns_names and not ips:
        raise ValueError("a serving certificate needs at least one host name or IP address")
    start = _now(now)
    ca_cert = ca.certificate
    ca_key = ca.private_key
    key = _new_key(key_algorithm)
    public = key.public_key()
    cn = common_name or (dns_names[0] if dns_names else str(ips[0]))
    end = min(start + validity, ca_cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
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
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=_key_pem(key))
