"""Keep a CA and serving certificate on disk, creating or renewing them as needed.

Used by ``safety-gate serve`` when no ``--tls-cert`` is given (``<data-dir>/tls``) and
by ``safety-gate certs`` (``certs/``). Calling it again is cheap and safe: files are
only rewritten when something is missing, expiring, or no longer names the hosts
asked for, so a periodic call doubles as the renewal loop.

Files: ``ca.crt`` (the bundle to trust: the current CA first, then a previous CA
that is still valid, so a caBundle published before a CA rotation keeps working
while clients move over), ``ca.key``, ``tls.crt``, ``tls.key``. Keys are mode 0600.
Every file is replaced atomically (write, fsync, rename); the key is written before
the certificate, and :class:`~webhook.tls.reloading.ReloadingServerContext`
tolerates seeing the new key with the old certificate for a moment.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from webhook.tls.authority import (
    DEFAULT_CA_VALIDITY,
    DEFAULT_SERVING_VALIDITY,
    KeyPair,
    generate_ca,
    issue_serving_cert,
)
from webhook.tls.certinfo import bundle, covers, issued_by, load_certificates, needs_renewal

log = logging.getLogger(__name__)

#: Always in the serving certificate: the gate is reached locally (tests, port-forwards) by these.
DEFAULT_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "tls.crt", "tls.key"


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # the umask may have narrowed it; a pre-existing tmp kept its mode
    os.replace(tmp, path)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None



def _current_ca(directory: Path) -> tuple[KeyPair | None, bytes]:
    """The signing CA (first certificate of ca.crt with ca.key) and the whole bundle."""
    cert_pem, key_pem = _read(directory / CA_CERT), _read(directory / CA_KEY)
    if cert_pem is None or key_pem is None:
        return None, cert_pem or b""
    try:
        first = load_certificates(cert_pem)[0].public_bytes(serialization.Encoding.PEM)
        pair = KeyPair(cert_pem=first, key_pem=key_pem)
        return (pair if pair.matches() else None), cert_pem
    except ValueError:
        return None, b""


def _still_valid(bundle_pem: bytes, *, now: datetime.datetime) -> list[bytes]:
    if not bundle_pem:
        return []
    try:
        certs = load_certificates(bundle_pem)
    except ValueError:
        return []
    return [
        c.public_bytes(serialization.Encoding.PEM)
        for c in certs
        if c.not_valid_before_utc <= now < c.not_valid_after_utc
    ]


def ensure_serving_pair(
    directory: Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    now: datetime.datetime | None = None,
    serving_validity: datetime.timedelta = DEFAULT_SERVING_VALIDITY,
    ca_validity: datetime.timedelta = DEFAULT_CA_VALIDITY,
    renew_before: datetime.timedelta | None = None,
    ca_renew_before: datetime.timedelta | None = None,
) -> tuple[Path, Path, Path]:
    """Make sure ``directory`` holds a valid CA and serving pair; return (ca.crt, tls.crt, tls.key).

    The serving certificate names ``localhost``, ``127.0.0.1``, ``::1`` and ``hosts``.
    It is renewed when a third of its validity is left (``renew_before``), the CA
    when a tenth is left (``ca_renew_before``) — early enough that a periodic check
    (hourly, daily) never lets either lapse.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    renew_before = serving_validity / 3 if renew_before is None else renew_before
    ca_renew_before = ca_validity / 10 if ca_renew_before is None else ca_renew_before
    wanted = list(dict.fromkeys((*DEFAULT_HOSTS, *hosts)))
    paths = directory / CA_CERT, directory / TLS_CERT, directory / TLS_KEY

    ca, old_bundle = _current_ca(directory)
    ca_renewed = False
    if ca is None or needs_renewal(ca.cert_pem, now=now, renew_before=ca_renew_before):
        ca = generate_ca(validity=ca_validity, now=now)
        _write_atomically(directory / CA_KEY, ca.key_pem, mode=0o600)
        _write_atomically(directory / CA_CERT, bundle(ca.cert_pem, *_still_valid(old_bundle, now=now)), mode=0o644)
        ca_renewed = True
        log.info("wrote a new CA to %s", directory / CA_CERT)

    cert_pem, key_pem = _read(directory / TLS_CERT), _read(directory / TLS_KEY)
    reasons = []
    if ca_renewed:
        reasons.append("new CA")
    elif cert_pem is None or key_pem is None:
        reasons.append("missing")
    else:
        try:
            if not KeyPair(cert_pem=cert_pem, key_pem=key_pem).matches():
                reasons.append("key does not match")
            if needs_renewal(cert_pem, now=now, renew_before=renew_before):
                reasons.append("expiring")
            if not covers(cert_pem, wanted):
                reasons.append("hosts changed")
            if not issued_by(cert_pem, ca.cert_pem):
                reasons.append("not issued by the current CA")
        except ValueError:
            reasons.append("unreadable")
    if reasons:
        pair = issue_serving_cert(ca=ca, hosts=wanted, validity=serving_validity, now=now)
        _write_atomically(directory / TLS_KEY, pair.key_pem, mode=0o600)
        _write_atomically(directory / TLS_CERT, pair.cert_pem, mode=0o644)
        log.info("wrote a serving certificate to %s (%s)", directory / TLS_CERT, ", ".join(reasons))
    return paths
