-- The effectiveness refresh and the summaries' EffectivenessMetric read every assessed action of
-- the last 30 days. Without an index on assessed actions by time, that read walked every action of
-- those 30 days (3.3M rows in the 10M-action benchmark, 2.3 s of a core, while decisions waited:
-- issue 15) to find the few with a score. Partial: only assessed actions are in it, so it stays
-- small however large the history grows, and decisions (whose inserts have no score) never
-- write to it. Ordered as the query reads.
CREATE INDEX resource_action_traces_scored
    ON resource_action_traces (cluster_id, action_timestamp, id)
    WHERE effectiveness_score IS NOT NULL;
