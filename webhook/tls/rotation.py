"""What to write to the certificate Secret next: the rotation plan, as pure functions.

Self-managed certificates (chart ``certificates.mode: self-managed``) live in one Secret
in the gate's namespace, shared by every replica::

    ca.crt           the current CA (signs tls.crt)
    ca.key           its key (every replica must be able to renew tls.crt)
    tls.crt/tls.key  the serving certificate, SANs <service>, <service>.<ns>,
                     <service>.<ns>.svc, <service>.<ns>.svc.cluster.local (+ localhost)
    ca-previous.crt  only during a CA rotation: the CA being retired

and an annotation :data:`ROTATED_AT` (when ``ca-previous.crt`` appeared). The webhook's
``caBundle`` is always :func:`ca_bundle` of the Secret: ``ca.crt`` + ``ca-previous.crt``.

States and transitions (:func:`plan`, one step per call; callers re-plan until ``none``)::

    (no Secret / unusable CA / expired CA) --bootstrap--> STEADY
    STEADY    --renew-serving (tls.crt due, wrong CA, wrong names)--> STEADY   (bundle unchanged)
    STEADY    --rotate-ca (ca.crt due)-->  ROTATING: new CA + tls.crt signed by it,
                                            old CA in ca-previous.crt, bundle = new + old
    ROTATING  --renew-serving--> ROTATING  (ca-previous kept, bundle unchanged)
    ROTATING  --drop-previous (ROTATED_AT + overlap passed)--> STEADY, bundle = new

Why two CAs at once, and for how long: the API server trusts exactly the caBundle, while
each replica switches its serving certificate on its own schedule (its next check of the
Secret). Between the rotation and the moment the last replica serves a certificate of the
new CA, both kinds of certificate are in use, so both CAs must be trusted. Two grace
periods make that safe without replicas talking to each other:

* ``propagation`` — a replica starts serving a certificate of a *new* CA only once the CA
  is in the webhook configuration and ``ROTATED_AT + propagation`` has passed, which gives
  the API server (it reads webhook configurations through an informer) time to trust it.
  The old certificate stays valid meanwhile: the CA is renewed ``renew_before`` early.
* ``overlap`` — the old CA leaves the bundle ``overlap`` after ``ROTATED_AT``. It must be
  longer than ``propagation`` plus a few check intervals, so that by then every live
  replica has switched (a replica that is down serves nothing, and loads the new pair
  when it starts). A stale bundle that still holds the old CA keeps verifying the new
  certificate, so clients that lag behind the configuration are fine as well.

A CA that is due again while the previous rotation's overlap still runs waits for the drop
(renew_before is far longer than overlap in any sensible setting); a CA that has actually
expired (or is not yet valid) is useless, so it is replaced outright (``bootstrap``).

``renew_before`` is shared by both certificates, as in the chart; for a certificate
whose validity is not longer than twice ``renew_before`` half its validity is used
instead, so that a short-lived certificate is not "due" the moment it is issued.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from webhook.tls.authority import CLOCK_SKEW, KeyPair, generate_ca, issue_serving_cert
from webhook.tls.certinfo import bundle, covers, issued_by, load_certificates, needs_renewal

CA_CERT, CA_KEY, CA_PREVIOUS, TLS_CERT, TLS_KEY = "ca.crt", "ca.key", "ca-previous.crt", "tls.crt", "tls.key"
#: Secret annotation: when the current CA replaced ``ca-previous.crt`` (RFC 3339, UTC).
ROTATED_AT = "safety-gate.ai.prometheus-alerts-slm.io/ca-rotated-at"

Action = Literal["none", "bootstrap", "rotate-ca", "renew-serving", "drop-previous"]

#: Names always in the serving certificate besides the service's: probes and port-forwards.
LOCAL_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")


def service_hosts(*, service: str, namespace: str) -> tuple[str, ...]:
    """The names the API server may use for the Service, then the local ones."""
    return (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local", *LOCAL_HOSTS)


@dataclasses.dataclass(frozen=True)
class RotationPolicy:
    """Validities and grace periods (see the module docstring)."""

    ca_validity: datetime.timedelta = datetime.timedelta(days=3650)
    cert_validity: datetime.timedelta = datetime.timedelta(days=365)
    renew_before: datetime.timedelta = datetime.timedelta(days=30)
    propagation: datetime.timedelta = datetime.timedelta(seconds=30)
    overlap: datetime.timedelta = datetime.timedelta(hours=1)

    def __post_init__(self) -> None:
        for name in ("ca_validity", "cert_validity", "renew_before"):
            if getattr(self, name) <= datetime.timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.overlap <= self.propagation:
            raise ValueError("overlap must be longer than propagation: replicas switch after propagation")

    @staticmethod
    def _renew_before(validity: datetime.timedelta, renew_before: datetime.timedelta) -> datetime.timedelta:
        return min(renew_before, validity / 2)

    @property
    def ca_renew_before(self) -> datetime.timedelta:
        return self._renew_before(self.ca_validity, self.renew_before)

    @property
    def cert_renew_before(self) -> datetime.timedelta:
        return self._renew_before(self.cert_validity, self.renew_before)


@dataclasses.dataclass(frozen=True)
class Plan:
    """One step: ``data``/``rotated_at`` are the Secret's new contents (None: leave it alone)."""

    action: Action
    reason: str
    data: dict[str, bytes] | None = None
    rotated_at: datetime.datetime | None = None

    @property
    def changes(self) -> bool:
        return self.data is not None


def _pem(cert_pem: bytes) -> bytes:
    return load_certificates(cert_pem)[0].public_bytes(serialization.Encoding.PEM)



def current_ca(data: Mapping[str, bytes]) -> KeyPair | None:
    """The CA in ``ca.crt``/``ca.key`` if both are there, readable and belong together."""
    cert_pem, key_pem = data.get(CA_CERT), data.get(CA_KEY)
    if not cert_pem or not key_pem:
        return None
    try:
        pair = KeyPair(cert_pem=_pem(cert_pem), key_pem=key_pem)
        if not pair.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return None
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return None
    return pair if pair.matches() else None


def ca_bundle(data: Mapping[str, bytes]) -> bytes:
    """What the webhook configuration must trust for this Secret: current CA, then the previous one."""
    parts = [data[k] for k in (CA_CERT, CA_PREVIOUS) if data.get(k)]
    try:
        return bundle(*parts) if parts else b""
    except ValueError:
        return bundle(data[CA_CERT]) if data.get(CA_CERT) else b""


def serving_problem(data: Mapping[str, bytes], *, ca: KeyPair, hosts: Sequence[str], now: datetime.datetime,
                    policy: RotationPolicy) -> str | None:
    """Why ``tls.crt``/``tls.key`` must be reissued, or None when they are fine."""
    cert_pem, key_pem = data.get(TLS_CERT), data.get(TLS_KEY)
    if not cert_pem or not key_pem:
        return "serving certificate missing"
    try:
        if not KeyPair(cert_pem=cert_pem, key_pem=key_pem).matches():
            return "serving key does not match the certificate"
        if not issued_by(cert_pem, ca.cert_pem):
            return "serving certificate not issued by the current CA"
        if not covers(cert_pem, list(hosts)):
            return "serving certificate does not name every host"
        if needs_renewal(cert_pem, now=now, renew_before=policy.cert_renew_before):
            return "serving certificate due for renewal"
    except (ValueError, TypeError):
        return "serving certificate unreadable"
    return None


def _serving(ca: KeyPair, *, hosts: Sequence[str], now: datetime.datetime, policy: RotationPolicy) -> dict[str, bytes]:
    pair = issue_serving_cert(ca=ca, hosts=hosts, validity=policy.cert_validity, now=now)
    return {TLS_CERT: pair.cert_pem, TLS_KEY: pair.key_pem}


def _fresh(*, hosts: Sequence[str], now: datetime.datetime, policy: RotationPolicy) -> dict[str, bytes]:
    ca = generate_ca(validity=policy.ca_validity, now=now)
    return {CA_CERT: ca.cert_pem, CA_KEY: ca.key_pem, **_serving(ca, hosts=hosts, now=now, policy=policy)}


def rotation_started(data: Mapping[str, bytes], rotated_at: datetime.datetime | None) -> datetime.datetime | None:
    """When the current CA replaced ``ca-previous.crt``: the annotation, else (annotation lost)
    the issue time of the current CA (its not-before is backdated by the clock skew allowance)."""
    if rotated_at is not None:
        return rotated_at
    try:
        return load_certificates(data[CA_CERT])[0].not_valid_before_utc + CLOCK_SKEW
    except (KeyError, ValueError):
        return None


def plan(*, now: datetime.datetime, data: Mapping[str, bytes] | None, rotated_at: datetime.datetime | None,
         hosts: Sequence[str], policy: RotationPolicy) -> Plan:
    """The next step for a Secret holding ``data`` (None: no Secret yet) at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if data is None:
        return Plan("bootstrap", "no certificate Secret yet", _fresh(hosts=hosts, now=now, policy=policy))
    ca = current_ca(data)
    if ca is None:
        return Plan("bootstrap", "no usable CA in the Secret", _fresh(hosts=hosts, now=now, policy=policy))
    ca_cert = ca.certificate
    if not ca_cert.not_valid_before_utc <= now < ca_cert.not_valid_after_utc:
        return Plan("bootstrap", "the CA has expired or is not yet valid", _fresh(hosts=hosts, now=now, policy=policy))

    previous = data.get(CA_PREVIOUS)
    if previous:
        started = rotation_started(data, rotated_at)
        if started is None or now >= started + policy.overlap:
            kept = {k: v for k, v in data.items() if k != CA_PREVIOUS}
            return Plan("drop-previous", "the previous CA's overlap has passed", kept)
    elif needs_renewal(ca.cert_pem, now=now, renew_before=policy.ca_renew_before):
        new_ca = generate_ca(validity=policy.ca_validity, now=now)
        written = {**data, CA_CERT: new_ca.cert_pem, CA_KEY: new_ca.key_pem, CA_PREVIOUS: _pem(ca.cert_pem),
                   **_serving(new_ca, hosts=hosts, now=now, policy=policy)}
        return Plan("rotate-ca", "the CA is due for renewal", written, rotated_at=now)

    problem = serving_problem(data, ca=ca, hosts=hosts, now=now, policy=policy)
    if problem is not None:
        written = {**data, **_serving(ca, hosts=hosts, now=now, policy=policy)}
        return Plan("renew-serving", problem, written, rotated_at=rotated_at if previous else None)
    return Plan("none", "certificates are current")


def may_serve(data: Mapping[str, bytes], *, rotated_at: datetime.datetime | None, trusted_bundle: bytes,
              now: datetime.datetime, policy: RotationPolicy) -> bool:
    """Whether a replica may start serving the Secret's ``tls.crt``.

    Only when its CA is in ``trusted_bundle`` (what the webhook configuration holds) and,
    right after a CA rotation, once ``propagation`` has passed — until then the replica
    keeps serving its previous certificate (of the previous CA, still valid and trusted).
    """
    ca_pem = data.get(CA_CERT)
    if not ca_pem or not trusted_bundle:
        return False
    try:
        trusted = {c.public_bytes(serialization.Encoding.DER) for c in load_certificates(trusted_bundle)}
        if load_certificates(ca_pem)[0].public_bytes(serialization.Encoding.DER) not in trusted:
            return False
    except ValueError:
        return False
    if data.get(CA_PREVIOUS):
        started = rotation_started(data, rotated_at)
        if started is not None and now < started + policy.propagation:
            return False
    return True


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    """An RFC 3339 UTC time as written by :func:`format_time`; None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")  # noqa: DTZ007 - Z: UTC, set below
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.timezone.utc)
