"""Certificates for serving the webhook over TLS.

* :mod:`.authority` — create a CA and serving certificates signed by it (PEM bytes).
* :mod:`.certinfo` — read what a certificate says: expiry, SANs, renewal due, CA bundles.
* :mod:`.selfsigned` — keep a CA + serving pair on disk fresh (``serve`` without
  ``--tls-cert``, ``safety-gate certs``).
* :mod:`.reloading` — an ``ssl.SSLContext`` that picks up renewed files without a restart.
"""

from webhook.tls.authority import KeyPair, generate_ca, issue_serving_cert
from webhook.tls.certinfo import bundle, load_certificates, needs_renewal, not_after, san_hosts
from webhook.tls.reloading import ReloadingServerContext, serving_context
from webhook.tls.selfsigned import DEFAULT_HOSTS, ensure_serving_pair

__all__ = [
    "DEFAULT_HOSTS",
    "KeyPair",
    "ReloadingServerContext",
    "bundle",
    "ensure_serving_pair",
    "generate_ca",
    "issue_serving_cert",
    "load_certificates",
    "needs_renewal",
    "not_after",
    "san_hosts",
    "serving_context",
]
