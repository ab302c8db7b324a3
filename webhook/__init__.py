"""safety-gate: a validating admission webhook that stops automated remediation from oscillating.

Layering, lowest first (a module imports only from layers at or below its own):

* ``actions``   — the domain vocabulary: targets, changes, recorded action events.
* ``policy``    — OscillationPattern documents, defaults, actor classes.
* ``detection`` — pure pattern detectors: history in, findings out.
* ``decision``  — pure verdicts: findings + restrictions + approvals → an admission decision.
* ``admission`` — AdmissionReview parsing and response shapes.
* ``store``     — PostgreSQL (system of record) and Redis (hot cache); the only I/O on history.
* ``kube``      — the Kubernetes edge: alerts, live policies, approvals.
* ``server``, ``cli`` — the process edges.
"""

__version__ = "0.1.0"
