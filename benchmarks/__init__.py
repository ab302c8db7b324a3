"""Benchmarks of safety-gate: one command, a results table, numbers only (nothing is asserted).

    python -m benchmarks [load|history|apiserver|memory|all] [--help for flags]

Parts (each runnable alone, each prints how long it took):

* ``load``      — open-loop HTTPS load (vegeta) at a fixed rate against the gate and against a
                  no-op webhook on the same server stack; latency, errors, rate, RSS, ratio.
* ``history``   — 10M actions over 90 days in PostgreSQL: cold-cache decisions, the history
                  API, bulk ingest through the gate's own write path, a retention run.
* ``apiserver`` — ``kubectl scale``-equivalent requests through a real kube-apiserver, with
                  and without the gate registered.
* ``memory``    — the gate's RSS, sampled every 100k requests up to one million.

Nothing here is collected by pytest (no ``test_*`` modules); results go in ``BENCHMARKS.md``.
"""
