-- Issue 15, "background work never stalls decisions": retention finds the targets over their
-- max_actions without counting every target's traces (67 paged counts took 23.5 s of a 55 s run
-- over 10M actions, and the worst seconds of the decisions fell inside them).
--
-- action_count is an upper bound of a target's traces: the decision's write adds one in the
-- history upsert it already makes (no extra statement, no trigger); retention subtracts what it
-- deletes and, for the few targets whose counter exceeds max_actions, recounts exactly and takes
-- off the excess it saw. Dropped partitions and a write whose trace conflicted only leave it
-- higher than the truth, which costs one exact recount of that target, never a missed one.
-- Rows written around the gate (direct SQL) are not counted.
ALTER TABLE action_histories ADD COLUMN IF NOT EXISTS action_count bigint NOT NULL DEFAULT 0;

-- Existing installs: one count, here, at migrate time (run before the new version serves).
UPDATE action_histories h SET action_count = s.n
FROM (SELECT action_history_id, count(*) AS n FROM resource_action_traces
      WHERE action_history_id IS NOT NULL GROUP BY action_history_id) AS s
WHERE h.id = s.action_history_id AND h.action_count <> s.n;
