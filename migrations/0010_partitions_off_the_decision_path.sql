-- Issue 15, "background work never stalls decisions": partition DDL that no decision waits behind.
--
-- Measured with pg_locks (PostgreSQL 18): `CREATE TABLE ... PARTITION OF resource_action_traces`
-- takes ACCESS EXCLUSIVE on the parent, and every decision's trace insert queued behind it; so did
-- `DROP TABLE` of an attached partition. `ATTACH PARTITION` and `DETACH PARTITION ... CONCURRENTLY`
-- take only SHARE UPDATE EXCLUSIVE on the parent, which inserts and reads do not conflict with, but
-- the foreign key from the traces to action_histories still reached into action_histories: ATTACH
-- took SHARE ROW EXCLUSIVE on it (blocking the history upsert of every decision), a detach gave the
-- detached table RI triggers of its own on it, and dropping those took ACCESS EXCLUSIVE on it.
--
-- 1. The foreign key goes. Nothing deletes histories (its ON DELETE CASCADE never fired), and every
--    trace's history id comes from the history upserted in the same statement or transaction, so it
--    checked nothing a decision could get wrong, at the price of an RI lookup per trace insert and a
--    lock on action_histories in every partition's DDL. Dropping it takes ACCESS EXCLUSIVE on both
--    tables once, here, at install time; no rows are scanned.
ALTER TABLE resource_action_traces DROP CONSTRAINT IF EXISTS resource_action_traces_action_history_id_fkey;

-- 2. A month's partition is built as a plain table of the same shape and then attached. The CHECK
--    constraint matching the bound lets ATTACH skip its validation scan (the table is new and
--    empty here, but a table left behind by an interrupted drop may not be); it is redundant once
--    attached, so it goes again. Partitions are made ahead (below, and by every retention run), so
--    this runs on the decision path only as the fallback for a write into a month that has none.
CREATE OR REPLACE FUNCTION sg_ensure_partition(ts timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    month_end   timestamptz := (date_trunc('month', ts AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    part        text := 'resource_action_traces_' || to_char(ts AT TIME ZONE 'UTC', 'YYYY_MM');
    bound       text := 'resource_action_traces_' || to_char(ts AT TIME ZONE 'UTC', 'YYYY_MM') || '_bound';
BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(part)
               AND inhparent = 'resource_action_traces'::regclass) THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('sg_ensure_partition'));
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE resource_action_traces INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(part)
                   AND inhparent = 'resource_action_traces'::regclass) THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (action_timestamp IS NOT NULL'
                       ' AND action_timestamp >= %L AND action_timestamp < %L)', part, bound, month_start, month_end);
        EXECUTE format('ALTER TABLE resource_action_traces ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, month_start, month_end);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, bound);
    END IF;
    RETURN part;
END;
$$;

-- 3. This month and the next two exist from install on; each retention run keeps two ahead.
SELECT sg_ensure_partition(now());
SELECT sg_ensure_partition(now() + interval '1 month');
SELECT sg_ensure_partition(now() + interval '2 months');
