-- A schedulability-oscillation cooling period refuses a node's cordons and uncordons
-- (Applies.SCHEDULABILITY, "schedulability"), a value the original check did not know: PostgreSQL
-- refused the decision that started one, which went to the dead letters, and the cooling period
-- was held by no store. The check now lists every value of webhook.detection.registry.Applies
-- (tests/integration/test_restrictions_applies.py keeps them equal).

ALTER TABLE restrictions DROP CONSTRAINT IF EXISTS restrictions_applies_check;
ALTER TABLE restrictions ADD CONSTRAINT restrictions_applies_check
    CHECK (applies IN ('replicas', 'schedulability', 'all'));
