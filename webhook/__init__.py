"""safety-gate: a validating admission webhook that stops automated remediation from oscillating.

Layering, lowest first (a module imports only from layers at or below its own):

* ``actions``       — the domain vocabulary: targets, changes, recorded action events.
* ``policy``        — OscillationPattern documents, defaults, actor classes, layering.
* ``admission``     — AdmissionReview parsing, request → proposal, response shapes.
* ``detection``     — pure pattern detectors: a situation in, findings out.
* ``decision``      — pure verdicts: findings + restrictions + approvals → a response and its effects.
* ``metrics``       — the Prometheus metrics every layer above may count in.
* ``services``      — the background-service protocol (start, stop, health) and the guarded loop.
* ``tls``           — certificates: issuing, inspecting, rotation planning, reloading contexts.
* ``store``         — PostgreSQL (system of record), Redis (cache, locks, outbox), migrations,
                      embedded servers; the only I/O on history.
* ``effectiveness``, ``retention`` — assessments and aggregates; bounded history.
* ``summaries``     — what the kubectl-visible summaries say, which targets changed, write pacing.
* ``engine``        — the one path from a request to a remembered verdict (``Gate``).
* ``kube``          — the Kubernetes edge: alerts, live policies, approvals, lookups, certificates.
* ``server``, ``mcp``, ``cli`` — the process edges: HTTPS, MCP tools, the command line.
"""

__version__ = "0.1.0"
