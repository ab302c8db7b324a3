-- The OscillationPattern statistics read, every minute on one replica, the decisions of the last
-- 30 days in which a pattern formed, and the approvals and bypasses that overrode them: a small
-- share of admission_decisions, indexed on its own so the pass never scans the whole table.

CREATE INDEX IF NOT EXISTS admission_decisions_detected
    ON admission_decisions (cluster_id, decided_at)
    WHERE pattern IS NOT NULL AND strategy IS NOT NULL;

CREATE INDEX IF NOT EXISTS admission_decisions_overrides
    ON admission_decisions (cluster_id, decided_at)
    WHERE outcome IN ('approved', 'bypass');
