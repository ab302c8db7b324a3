"""kubectl-visible summaries of the history: ``ActionHistorySummary`` and ``EffectivenessMetric``.

PostgreSQL holds the full history; these small objects are its view for people (the seed's
hybrid design: "ActionHistorySummary ← lightweight summaries", "EffectivenessMetric ← current
metric snapshots"). This layer is what they contain and which targets changed — pure builders
(:mod:`.targets`, :mod:`.effectiveness`), the pacing rule (:mod:`.pacing`) and the SQL
(:mod:`webhook.store.summaries`). Writing them to the API server is ``webhook.kube.summaries``.
"""
