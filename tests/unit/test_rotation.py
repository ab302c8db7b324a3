"""The rotation plan (webhook.tls.rotation): given the time and the Secret, what to write next.

Every branch of :func:`plan` and :func:`may_serve`, on real certificates made at fixed times.
The Kubernetes side (races, caBundle, files) is proven against a real API server in
``e2e/test_certificates.py``.
"""

from __future__ import annotations

import datetime

import pytest

from webhook.tls import generate_ca, issue_serving_cert
from webhook.tls.certinfo import covers, issued_by, load_certificates, not_after
from webhook.tls.rotation import (
    CA_CERT,
    CA_KEY,
    CA_PREVIOUS,
    TLS_CERT,
    TLS_KEY,
    RotationPolicy,
    ca_bundle,
    current_ca,
    format_time,
    may_serve,
    parse_time,
    plan,
    rotation_started,
    service_hosts,
)

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
HOURS = datetime.timedelta(hours=1)
HOSTS = service_hosts(service="gate", namespace="sg")
POLICY = RotationPolicy(ca_validity=1000 * HOURS, cert_validity=100 * HOURS, renew_before=10 * HOURS,
                        propagation=datetime.timedelta(minutes=1), overlap=2 * HOURS)


def steady(at: datetime.datetime = T0) -> dict[str, bytes]:
    step = plan(now=at, data=None, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.data is not None
    return step.data


def certs_in(pem: bytes) -> int:
    return len(load_certificates(pem))


def test_service_hosts_name_the_service_every_way_the_api_server_may_and_localhost() -> None:
    assert HOSTS[:4] == ("gate", "gate.sg", "gate.sg.svc", "gate.sg.svc.cluster.local")
    assert {"localhost", "127.0.0.1"} <= set(HOSTS)


def test_no_secret_bootstraps_a_ca_and_a_serving_certificate_it_signed() -> None:
    step = plan(now=T0, data=None, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "bootstrap" and step.changes and step.rotated_at is None
    data = step.data
    assert set(data) == {CA_CERT, CA_KEY, TLS_CERT, TLS_KEY}
    assert issued_by(data[TLS_CERT], data[CA_CERT])
    assert covers(data[TLS_CERT], list(HOSTS))
    assert not_after(data[CA_CERT]) == T0 + POLICY.ca_validity
    assert not_after(data[TLS_CERT]) == T0 + POLICY.cert_validity
    assert certs_in(ca_bundle(data)) == 1


def test_fresh_certificates_need_nothing() -> None:
    data = steady()
    step = plan(now=T0 + HOURS, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "none" and not step.changes and step.data is None


@pytest.mark.parametrize("breakage", ["no key", "key of another CA", "garbage", "a leaf as CA"])
def test_an_unusable_ca_is_replaced_by_a_new_bootstrap(breakage: str) -> None:
    data = steady()
    other = generate_ca(now=T0)
    if breakage == "no key":
        del data[CA_KEY]
    elif breakage == "key of another CA":
        data[CA_KEY] = other.key_pem
    elif breakage == "garbage":
        data[CA_CERT] = b"not a certificate"
    else:
        leaf = issue_serving_cert(ca=other, hosts=["x"], now=T0)
        data[CA_CERT], data[CA_KEY] = leaf.cert_pem, leaf.key_pem
    assert current_ca(data) is None
    step = plan(now=T0, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "bootstrap" and CA_PREVIOUS not in step.data


@pytest.mark.parametrize("at", [T0 + 1000 * HOURS, T0 - datetime.timedelta(minutes=10)],
                         ids=["expired", "not-yet-valid"])
def test_an_expired_or_not_yet_valid_ca_is_useless_so_it_is_replaced_outright(at: datetime.datetime) -> None:
    data = steady()
    step = plan(now=at, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "bootstrap"
    assert CA_PREVIOUS not in step.data and step.data[CA_CERT] != data[CA_CERT]


def test_a_due_ca_rotates_with_both_cas_in_the_bundle_and_a_serving_certificate_of_the_new_one() -> None:
    data = steady()
    now = T0 + POLICY.ca_validity - POLICY.renew_before  # exactly due
    step = plan(now=now, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "rotate-ca" and step.rotated_at == now
    new = step.data
    assert new[CA_PREVIOUS] == data[CA_CERT]
    assert new[CA_CERT] != data[CA_CERT] and new[CA_KEY] != data[CA_KEY]
    assert issued_by(new[TLS_CERT], new[CA_CERT])
    bundle = load_certificates(ca_bundle(new))
    assert [c.subject for c in bundle] and len(bundle) == 2
    assert bundle[0] == load_certificates(new[CA_CERT])[0] and bundle[1] == load_certificates(data[CA_CERT])[0]


def test_a_ca_not_yet_due_is_kept() -> None:
    data = steady()
    now = T0 + POLICY.ca_validity - POLICY.renew_before - datetime.timedelta(seconds=1)
    # the serving certificate is long renewed by then; give it a fresh one so only the CA is judged
    ca = current_ca(data)
    assert ca is not None
    pair = issue_serving_cert(ca=ca, hosts=HOSTS, validity=POLICY.cert_validity, now=now)
    data.update({TLS_CERT: pair.cert_pem, TLS_KEY: pair.key_pem})
    assert plan(now=now, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY).action == "none"


def rotated() -> tuple[dict[str, bytes], datetime.datetime]:
    now = T0 + POLICY.ca_validity - POLICY.renew_before
    step = plan(now=now, data=steady(), rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "rotate-ca" and step.rotated_at is not None
    return step.data, step.rotated_at


def test_during_the_overlap_the_previous_ca_stays() -> None:
    data, at = rotated()
    step = plan(now=at + POLICY.overlap - datetime.timedelta(seconds=1), data=data, rotated_at=at, hosts=HOSTS,
                policy=POLICY)
    assert step.action == "none"


def test_after_the_overlap_the_previous_ca_is_dropped_and_the_bundle_holds_only_the_new_one() -> None:
    data, at = rotated()
    step = plan(now=at + POLICY.overlap, data=data, rotated_at=at, hosts=HOSTS, policy=POLICY)
    assert step.action == "drop-previous" and step.rotated_at is None
    assert CA_PREVIOUS not in step.data
    assert dict(step.data) == {k: v for k, v in data.items() if k != CA_PREVIOUS}
    assert ca_bundle(step.data) == ca_bundle({CA_CERT: data[CA_CERT]})
    assert certs_in(ca_bundle(step.data)) == 1


def test_without_the_annotation_the_overlap_counts_from_the_new_cas_issue_time() -> None:
    data, at = rotated()
    assert rotation_started(data, None) == at
    assert plan(now=at + HOURS, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY).action == "none"
    assert plan(now=at + POLICY.overlap, data=data, rotated_at=None, hosts=HOSTS,
                policy=POLICY).action == "drop-previous"


def test_a_ca_due_again_during_the_overlap_waits_for_the_drop_first() -> None:
    short = RotationPolicy(ca_validity=4 * HOURS, cert_validity=HOURS, renew_before=3 * HOURS,
                           propagation=datetime.timedelta(minutes=1), overlap=5 * HOURS / 2)
    base = plan(now=T0, data=None, rotated_at=None, hosts=HOSTS, policy=short).data
    now = T0 + 2 * HOURS  # due: renew_before capped at half the validity (2h)
    step = plan(now=now, data=base, rotated_at=None, hosts=HOSTS, policy=short)
    assert step.action == "rotate-ca"
    later = now + 2 * HOURS + datetime.timedelta(seconds=1)  # the new CA is due again, the overlap not over
    fresh = step.data
    ca = current_ca(fresh)
    assert ca is not None and later >= not_after(ca.cert_pem) - short.ca_renew_before
    pair = issue_serving_cert(ca=ca, hosts=HOSTS, validity=short.cert_validity, now=later)
    fresh = {**fresh, TLS_CERT: pair.cert_pem, TLS_KEY: pair.key_pem}
    assert plan(now=later, data=fresh, rotated_at=step.rotated_at, hosts=HOSTS, policy=short).action == "none"
    assert plan(now=now + short.overlap, data=fresh, rotated_at=step.rotated_at, hosts=HOSTS,
                policy=short).action == "drop-previous"


@pytest.mark.parametrize("problem", ["missing", "key mismatch", "other CA", "hosts changed", "due", "unreadable"])
def test_a_serving_certificate_problem_renews_it_with_the_same_ca_and_the_bundle_unchanged(problem: str) -> None:
    data = steady()
    now = T0 + HOURS
    ca = current_ca(data)
    assert ca is not None
    if problem == "missing":
        del data[TLS_CERT]
    elif problem == "key mismatch":
        data[TLS_KEY] = issue_serving_cert(ca=ca, hosts=HOSTS, now=T0).key_pem
    elif problem == "other CA":
        pair = issue_serving_cert(ca=generate_ca(now=T0), hosts=HOSTS, now=T0)
        data.update({TLS_CERT: pair.cert_pem, TLS_KEY: pair.key_pem})
    elif problem == "hosts changed":
        pair = issue_serving_cert(ca=ca, hosts=["gate.old.svc"], now=T0)
        data.update({TLS_CERT: pair.cert_pem, TLS_KEY: pair.key_pem})
    elif problem == "due":
        now = T0 + POLICY.cert_validity - POLICY.renew_before
    else:
        data[TLS_CERT] = b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    step = plan(now=now, data=data, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert step.action == "renew-serving", step.reason
    assert step.data[CA_CERT] == data[CA_CERT] and step.data[CA_KEY] == data[CA_KEY]
    assert ca_bundle(step.data) == ca_bundle(data)
    assert issued_by(step.data[TLS_CERT], data[CA_CERT]) and covers(step.data[TLS_CERT], list(HOSTS))
    assert plan(now=now, data=step.data, rotated_at=None, hosts=HOSTS, policy=POLICY).action == "none"


def test_renewing_the_serving_certificate_during_a_rotation_keeps_the_previous_ca_and_its_time() -> None:
    data, at = rotated()
    now = at + datetime.timedelta(minutes=5)
    del data[TLS_KEY]
    step = plan(now=now, data=data, rotated_at=at, hosts=HOSTS, policy=POLICY)
    assert step.action == "renew-serving" and step.rotated_at == at
    assert step.data[CA_PREVIOUS] == data[CA_PREVIOUS] and certs_in(ca_bundle(step.data)) == 2


def test_renew_before_longer_than_half_a_validity_is_capped_so_nothing_is_due_at_issue() -> None:
    policy = RotationPolicy(ca_validity=datetime.timedelta(minutes=2), cert_validity=datetime.timedelta(seconds=40),
                            renew_before=datetime.timedelta(minutes=1), propagation=datetime.timedelta(seconds=2),
                            overlap=datetime.timedelta(seconds=10))
    assert policy.ca_renew_before == datetime.timedelta(minutes=1)
    assert policy.cert_renew_before == datetime.timedelta(seconds=20)
    data = plan(now=T0, data=None, rotated_at=None, hosts=HOSTS, policy=policy).data
    assert plan(now=T0 + datetime.timedelta(seconds=19), data=data, rotated_at=None, hosts=HOSTS,
                policy=policy).action == "none"
    assert plan(now=T0 + datetime.timedelta(seconds=20), data=data, rotated_at=None, hosts=HOSTS,
                policy=policy).action == "renew-serving"


def test_the_pair_of_a_new_ca_is_served_only_once_trusted_for_the_propagation_time() -> None:
    data, at = rotated()
    old_only = data[CA_PREVIOUS]
    both = ca_bundle(data)
    assert not may_serve(data, rotated_at=at, trusted_bundle=old_only, now=at + HOURS, policy=POLICY)
    assert not may_serve(data, rotated_at=at, trusted_bundle=b"", now=at + HOURS, policy=POLICY)
    assert not may_serve(data, rotated_at=at, trusted_bundle=both, now=at, policy=POLICY)
    assert may_serve(data, rotated_at=at, trusted_bundle=both, now=at + POLICY.propagation, policy=POLICY)
    assert not may_serve(data, rotated_at=at, trusted_bundle=b"garbage", now=at + HOURS, policy=POLICY)


def test_a_steady_pair_is_served_as_soon_as_its_ca_is_trusted() -> None:
    data = steady()
    assert may_serve(data, rotated_at=None, trusted_bundle=ca_bundle(data), now=T0, policy=POLICY)
    assert not may_serve({}, rotated_at=None, trusted_bundle=ca_bundle(data), now=T0, policy=POLICY)


def test_policy_and_time_checks() -> None:
    with pytest.raises(ValueError, match="overlap"):
        RotationPolicy(propagation=HOURS, overlap=HOURS)
    with pytest.raises(ValueError, match="positive"):
        RotationPolicy(cert_validity=datetime.timedelta(0))
    with pytest.raises(ValueError, match="timezone"):
        plan(now=datetime.datetime(2030, 1, 1), data=None, rotated_at=None, hosts=HOSTS, policy=POLICY)
    assert parse_time(format_time(T0)) == T0
    assert parse_time(None) is None and parse_time("yesterday") is None


def test_settings_read_the_charts_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    from webhook.settings import Settings

    monkeypatch.setenv("SAFETY_GATE_CA_VALIDITY", "87600h")
    monkeypatch.setenv("SAFETY_GATE_CERT_VALIDITY", "8760h")
    monkeypatch.setenv("SAFETY_GATE_CERT_RENEW_BEFORE", "720h")
    monkeypatch.setenv("SAFETY_GATE_CERT_SECRET", "gate-tls")
    settings = Settings()
    assert settings.cert_secret == "gate-tls"
    assert settings.ca_validity == datetime.timedelta(days=3650)
    assert settings.cert_validity == datetime.timedelta(days=365)
    assert settings.cert_renew_before == datetime.timedelta(days=30)
