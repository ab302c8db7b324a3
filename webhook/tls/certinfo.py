"""Reading certificates: expiry, names, renewal, CA bundles.

Kept apart from :mod:`.authority` because the server, the CLI and the chart hooks
need to *inspect* certificates (possibly issued by cert-manager) far more often
than they create them.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM blob (a chain or a bundle), in order."""
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:  # pragma: no cover - cryptography raises on no certificates already
        raise ValueError("no certificate in PEM data")
    return certs


def _first(cert_pem: bytes) -> x509.Certificate:
    return load_certificates(cert_pem)[0]


def not_after(cert_pem: bytes) -> datetime.datetime:
    """When the (first) certificate expires, timezone-aware UTC."""
    return _first(cert_pem).not_valid_after_utc


def not_before(cert_pem: bytes) -> datetime.datetime:
    return _first(cert_pem).not_valid_before_utc


def needs_renewal(cert_pem: bytes, *, now: datetime.datetime, renew_before: datetime.timedelta) -> bool:
    """Whether to renew now: expiring within ``renew_before``, expired, or not yet valid.

    "Not yet valid" counts because such a certificate is rejected just like an
    expired one (e.g. after the clock was corrected backwards).
    """
    cert = _first(cert_pem)
    return now >= cert.not_valid_after_utc - renew_before or now < cert.not_valid_before_utc


def san_hosts(cert_pem: bytes) -> set[str]:
    """The DNS names and IP addresses (as text) in the subjectAltName."""
    try:
        sans = _first(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {name.lower() for name in sans.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    return names


def covers(cert_pem: bytes, hosts: list[str] | tuple[str, ...]) -> bool:
    """Whether every host is named in the certificate's SANs (exact names, no wildcards)."""
    present = san_hosts(cert_pem)
    for host in hosts:
        try:
            wanted = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            wanted = host.lower()
        if wanted not in present:
            return False
    return True


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether ``ca_pem``'s (first) certificate signed ``cert_pem``'s (first) one."""
    cert, ca = _first(cert_pem), _first(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def bundle(*ca_pems: bytes) -> bytes:
    """One PEM bundle of all CA certificates given (for a ``caBundle``), duplicates dropped.

    During a CA rotation the webhook configuration must trust the old and the new CA at
    once, so that every replica — whichever certificate it still serves — is accepted.
    """
    seen: set[bytes] = set()
    parts: list[bytes] = []
    for pem in ca_pems:
        for cert in load_certificates(pem):
            der = cert.public_bytes(serialization.Encoding.DER)
            if der not in seen:
                seen.add(der)
                parts.append(cert.public_bytes(serialization.Encoding.PEM))
    return b"".join(parts)
