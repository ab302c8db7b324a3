"""Retention: how long a target's action history is kept, and which actions go first.

* ``policy``     — the per-target retention policy (the seed's ``retentionPolicy``).
* ``plan``       — pure planners: a target's traces and its policy in, the ids to delete out.
* ``partitions`` — pure month arithmetic: which monthly partitions to create and which to drop.
* ``runner``     — the I/O: one run over PostgreSQL under a leader lock, recorded in
  ``retention_operations`` and counted in ``ai_retention_operations_total``.
* ``schedule``   — the periodic run inside ``safety-gate serve``.
"""
