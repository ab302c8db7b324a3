"""The Kubernetes edge: OscillationAlerts, live OscillationPattern policies, approvals and lookups.

Everything here is optional. Without ``--kubeconfig`` and outside a cluster the gate decides
exactly the same way and keeps detections in PostgreSQL only; with a cluster these
components run beside the gate and never sit on the decision path:

* ``client``    — one API client (kubeconfig or in-cluster), every call in a worker thread with a timeout;
* ``informer``  — list + watch with relist on expiry, the shared loop of the watchers below;
* ``alerts``    — the OscillationAlert writer, fed by ``Gate.on_remembered`` through a bounded queue;
* ``approvals`` — ``spec.approval`` written by people, synced into PostgreSQL for the engine;
* ``policies``  — cluster ``OscillationPattern`` objects, pushed into the ``PolicyProvider``;
* ``lookups``   — workload labels and the HPA of a target, cached, with a short time budget;
* ``cleanup``   — removing the webhook configuration on uninstall;
* ``components``— starting and stopping the lot for ``Runtime``.
"""
