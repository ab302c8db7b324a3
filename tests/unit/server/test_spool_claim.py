"""One process drains a data dir's outbox spool; another on the same data dir spools to a file of its own.

The drain rewrites the spool with what is left, so a second drainer could drop a line the first
had just appended. ``flock`` locks belong to an open file, so two claims in one process already
exclude each other, as two processes do.
"""

from __future__ import annotations

import os
import pathlib

from webhook.server.runtime import claim_spool


def test_the_first_claim_gets_the_shared_spool_and_a_second_a_private_one(tmp_path: pathlib.Path) -> None:
    spool_dir = tmp_path / "spool"
    first, lock = claim_spool(spool_dir)
    assert first == spool_dir / "outbox.jsonl" and lock is not None
    try:
        second, no_lock = claim_spool(spool_dir)
        third, _ = claim_spool(spool_dir)
        assert second.parent == spool_dir and second.name.startswith(f"outbox-{os.getpid()}-") and no_lock is None
        assert third != second  # two more users in one process do not share a private spool either
    finally:
        os.close(lock)
    again, lock = claim_spool(spool_dir)  # released: the shared spool is free again
    assert again == spool_dir / "outbox.jsonl" and lock is not None
    os.close(lock)


def test_an_unwritable_spool_dir_does_not_stop_the_start(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path, lock = claim_spool(blocker / "spool")
    assert path == blocker / "spool" / "outbox.jsonl" and lock is None
