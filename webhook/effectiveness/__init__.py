"""Effectiveness: how well recorded actions worked, one assessment at a time and in aggregate.

* ``model``      — the assessment a person or a system posts (the seed's
  ``effectivenessAssessment``), validated by pydantic.
* ``stats``      — pure aggregation: mean, 95% confidence interval, trend.
* ``repository`` — the SQL: write assessments onto ``resource_action_traces``, read samples,
  upsert ``action_effectiveness_metrics``.
* ``service``    — assessing (store, then forget the target's cached history so the next
  decision sees the score) and refreshing aggregates (table and gauge).

The detectors already read scores: ``ineffective-loop`` through ``ActionEvent.effectiveness``
and ``resource-thrashing``'s suggested alternative through ``PostgresStore.target_effectiveness``.
"""
