"""Certificates: the chain verifies for the names the API server and local clients use,
validity and renewal are what the parameters say, and a running server picks up a
renewed certificate without restarting.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import verification

from webhook.tls import (
    ReloadingServerContext,
    bundle,
    ensure_serving_pair,
    generate_ca,
    issue_serving_cert,
    load_certificates,
    needs_renewal,
    not_after,
    san_hosts,
    serving_context,
)
from webhook.tls.authority import CLOCK_SKEW

NOW = datetime.datetime(2026, 11, 21, 21, 0, tzinfo=datetime.timezone.utc)
HOSTS = ["safety-gate.safety-gate.svc", "localhost", "127.0.0.1", "::1"]


def _verify(ca_pem: bytes, cert_pem: bytes, subject: verification.DNSName | verification.IPAddress, *, at: datetime.datetime) -> None:
    store = verification.Store(load_certificates(ca_pem))
    verifier = verification.PolicyBuilder().store(store).time(at).build_server_verifier(subject)
    verifier.verify(x509.load_pem_x509_certificate(cert_pem), [])


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "rsa-2048"])
def test_serving_chain_verifies_for_every_name(algorithm) -> None:
    ca = generate_ca(key_algorithm=algorithm, now=NOW)
    leaf = issue_serving_cert(ca=ca, hosts=HOSTS, key_algorithm=algorithm, now=NOW)
    at = NOW + datetime.timedelta(days=1)
    _verify(ca.cert_pem, leaf.cert_pem, verification.DNSName("safety-gate.safety-gate.svc"), at=at)
    _verify(ca.cert_pem, leaf.cert_pem, verification.DNSName("localhost"), at=at)
    _verify(ca.cert_pem, leaf.cert_pem, verification.IPAddress(ipaddress.ip_address("127.0.0.1")), at=at)
    _verify(ca.cert_pem, leaf.cert_pem, verification.IPAddress(ipaddress.ip_address("::1")), at=at)
    with pytest.raises(verification.VerificationError):
        _verify(ca.cert_pem, leaf.cert_pem, verification.DNSName("other.example"), at=at)
    with pytest.raises(verification.VerificationError):
        _verify(generate_ca(now=NOW).cert_pem, leaf.cert_pem, verification.DNSName("localhost"), at=at)


def test_sans_and_split_of_names_and_addresses() -> None:
    leaf = issue_serving_cert(ca=generate_ca(now=NOW), hosts=[*HOSTS, "LOCALHOST", "10.0.0.7"], now=NOW)
    assert san_hosts(leaf.cert_pem) == {"safety-gate.safety-gate.svc", "localhost", "127.0.0.1", "::1", "10.0.0.7"}
    sans = leaf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.0.0.7") in sans.get_values_for_type(x509.IPAddress)
    with pytest.raises(ValueError):
        issue_serving_cert(ca=generate_ca(now=NOW), hosts=[], now=NOW)


def test_validity_defaults_and_parameters() -> None:
    ca = generate_ca(now=NOW)
    assert not_after(ca.cert_pem) == NOW + datetime.timedelta(days=3650)
    assert ca.certificate.not_valid_before_utc == NOW - CLOCK_SKEW
    leaf = issue_serving_cert(ca=ca, hosts=["localhost"], now=NOW)
    assert not_after(leaf.cert_pem) == NOW + datetime.timedelta(days=365)
    short = issue_serving_cert(ca=ca, hosts=["localhost"], validity=datetime.timedelta(hours=2), now=NOW)
    assert not_after(short.cert_pem) == NOW + datetime.timedelta(hours=2)
    _verify(ca.cert_pem, short.cert_pem, verification.DNSName("localhost"), at=NOW + datetime.timedelta(hours=1))
    with pytest.raises(verification.VerificationError):
        _verify(ca.cert_pem, short.cert_pem, verification.DNSName("localhost"), at=NOW + datetime.timedelta(hours=3))
    # A serving certificate never outlives its CA.
    brief_ca = generate_ca(validity=datetime.timedelta(days=10), now=NOW)
    capped = issue_serving_cert(ca=brief_ca, hosts=["localhost"], now=NOW)
    assert not_after(capped.cert_pem) == not_after(brief_ca.cert_pem)


def test_ca_constraints() -> None:
    ca = generate_ca(now=NOW).certificate
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    leaf = issue_serving_cert(ca=generate_ca(now=NOW), hosts=["localhost"], now=NOW).certificate
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku


@pytest.mark.parametrize(
    ("at", "renew_before", "expected"),
    [
        (NOW, datetime.timedelta(days=30), False),
        (NOW + datetime.timedelta(days=334), datetime.timedelta(days=30), False),
        (NOW + datetime.timedelta(days=335), datetime.timedelta(days=30), True),  # exactly 30 days left
        (NOW + datetime.timedelta(days=400), datetime.timedelta(days=30), True),  # expired
        (NOW + datetime.timedelta(days=200), datetime.timedelta(days=180), True),
        (NOW - datetime.timedelta(hours=1), datetime.timedelta(days=30), True),  # not yet valid
    ],
)
def test_needs_renewal(at, renew_before, expected) -> None:
    leaf = issue_serving_cert(ca=generate_ca(now=NOW), hosts=["localhost"], now=NOW)
    assert needs_renewal(leaf.cert_pem, now=at, renew_before=renew_before) is expected


def test_bundle_joins_and_deduplicates() -> None:
    old, new = generate_ca(now=NOW), generate_ca(now=NOW)
    joined = bundle(new.cert_pem, old.cert_pem, new.cert_pem)
    assert [c.serial_number for c in load_certificates(joined)] == [new.certificate.serial_number, old.certificate.serial_number]


# ---------------------------------------------------------------- on disk


def test_ensure_serving_pair_writes_and_keeps_files(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = ensure_serving_pair(tmp_path / "tls", hosts=("gate.example.svc",))
    assert (ca_file.name, cert_file.name, key_file.name) == ("ca.crt", "tls.crt", "tls.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls" / "ca.key").stat().st_mode) == 0o600
    assert san_hosts(cert_file.read_bytes()) == {"localhost", "127.0.0.1", "::1", "gate.example.svc"}
    _verify(ca_file.read_bytes(), cert_file.read_bytes(), verification.DNSName("gate.example.svc"), at=datetime.datetime.now(datetime.timezone.utc))

    before = {p: p.read_bytes() for p in (ca_file, cert_file, key_file)}
    ensure_serving_pair(tmp_path / "tls", hosts=("gate.example.svc",))
    assert {p: p.read_bytes() for p in before} == before


def test_ensure_serving_pair_renews_the_leaf_and_keeps_the_ca(tmp_path: Path) -> None:
    ca_file, cert_file, _ = ensure_serving_pair(tmp_path, now=NOW)
    ca_before, cert_before = ca_file.read_bytes(), cert_file.read_bytes()

    ensure_serving_pair(tmp_path, now=NOW + datetime.timedelta(days=250))  # under 1/3 of a year left
    assert ca_file.read_bytes() == ca_before
    assert cert_file.read_bytes() != cert_before
    _verify(ca_before, cert_file.read_bytes(), verification.DNSName("localhost"), at=NOW + datetime.timedelta(days=251))

    renewed = cert_file.read_bytes()
    ensure_serving_pair(tmp_path, hosts=("new.example",), now=NOW + datetime.timedelta(days=251))
    assert cert_file.read_bytes() != renewed and "new.example" in san_hosts(cert_file.read_bytes())


def test_ca_rotation_keeps_the_old_ca_in_the_bundle(tmp_path: Path) -> None:
    ca_file, cert_file, _ = ensure_serving_pair(tmp_path, now=NOW)
    old_ca = load_certificates(ca_file.read_bytes())[0]
    later = NOW + datetime.timedelta(days=3650 - 100)  # inside the CA's last tenth
    ensure_serving_pair(tmp_path, now=later)
    cas = load_certificates(ca_file.read_bytes())
    assert len(cas) == 2 and cas[1] == old_ca and cas[0] != old_ca
    _verify(ca_file.read_bytes(), cert_file.read_bytes(), verification.DNSName("localhost"), at=later)


def test_mismatched_key_is_repaired(tmp_path: Path) -> None:
    _, cert_file, key_file = ensure_serving_pair(tmp_path)
    other = issue_serving_cert(ca=generate_ca(), hosts=["localhost"])
    key_file.write_bytes(other.key_pem)
    ensure_serving_pair(tmp_path)
    serving_context(cert_file=cert_file, key_file=key_file)  # loads: key matches again


# ---------------------------------------------------------------- handshakes


async def _peer_serial(port: int, ca_file: Path, *, server_hostname: str = "localhost") -> int:
    client = ssl.create_default_context(cafile=str(ca_file))
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=server_hostname)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()
        await writer.wait_closed()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


async def test_handshake_with_the_generated_pair(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = ensure_serving_pair(tmp_path)
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=serving_context(cert_file=cert_file, key_file=key_file))
    port = server.sockets[0].getsockname()[1]
    async with server:
        serial = x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
        assert await _peer_serial(port, ca_file) == serial
        assert await _peer_serial(port, ca_file, server_hostname="127.0.0.1") == serial
        with pytest.raises(ssl.SSLCertVerificationError):
            await _peer_serial(port, ca_file, server_hostname="elsewhere.example")


async def test_reloading_context_serves_the_renewed_certificate(tmp_path: Path) -> None:
    real_now = datetime.datetime.now(datetime.timezone.utc)
    # Issued 250 days ago: still valid, but due for renewal when checked now.
    ca_file, cert_file, key_file = ensure_serving_pair(tmp_path, now=real_now - datetime.timedelta(days=250))
    reloading = ReloadingServerContext(cert_file=cert_file, key_file=key_file, check_interval=0)
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=reloading.context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        first = await _peer_serial(port, ca_file)
        assert first == x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
        # A connection made before the renewal keeps its certificate.
        client = ssl.create_default_context(cafile=str(ca_file))
        _, early = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost")

        ensure_serving_pair(tmp_path)  # renews: writes tls.key, then tls.crt
        # Python sends no SNI for an IP address: the check must run on such handshakes too.
        second = await _peer_serial(port, ca_file, server_hostname="127.0.0.1")
        assert second != first
        assert second == x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number
        assert await _peer_serial(port, ca_file) == second  # stays on the new one

        der = early.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert x509.load_der_x509_certificate(der).serial_number == first
        early.close()
        await early.wait_closed()


async def test_half_rotated_files_keep_the_current_certificate(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = ensure_serving_pair(tmp_path)
    reloading = ReloadingServerContext(cert_file=cert_file, key_file=key_file, check_interval=0)
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, ssl=reloading.context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        first = await _peer_serial(port, ca_file)
        ca = generate_ca()
        replacement = issue_serving_cert(ca=ca, hosts=["localhost"])
        key_file.write_bytes(replacement.key_pem)  # the key first, as a rotation would
        assert await _peer_serial(port, ca_file) == first
        cert_file.write_bytes(replacement.cert_pem)
        (tmp_path / "new-ca.crt").write_bytes(ca.cert_pem)
        assert await _peer_serial(port, tmp_path / "new-ca.crt") == replacement.certificate.serial_number


def test_reload_checks_are_throttled(tmp_path: Path) -> None:
    _, cert_file, key_file = ensure_serving_pair(tmp_path)
    clock = [100.0]
    reloading = ReloadingServerContext(cert_file=cert_file, key_file=key_file, check_interval=5, clock=lambda: clock[0])
    ensure_serving_pair(tmp_path, hosts=("renamed.example",))
    assert not reloading.maybe_reload()
    clock[0] += 5
    assert reloading.maybe_reload()
    assert reloading.current is not reloading.context
    assert not reloading.maybe_reload(force=True)  # nothing changed since
