-- kubectl-visible summaries (ActionHistorySummary, EffectivenessMetric): where the summariser
-- has got to, durable so that whichever replica leads next carries on from there, and the
-- indexes its "what changed since" query needs on a large history.

CREATE TABLE summary_cursors (
    cluster_id  text        PRIMARY KEY,
    changed_at  timestamptz NOT NULL,
    target_key  text,        -- NULL: every change at or before changed_at is summarised
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX action_histories_updated ON action_histories (cluster_id, updated_at);
CREATE INDEX resource_action_traces_assessed ON resource_action_traces (cluster_id, effectiveness_assessed_at)
    WHERE effectiveness_assessed_at IS NOT NULL;
CREATE INDEX oscillation_detections_last_seen ON oscillation_detections (cluster_id, last_seen);
CREATE INDEX restrictions_target_created ON restrictions (cluster_id, created_at) WHERE scope LIKE 'target/%';
CREATE INDEX restrictions_target_until ON restrictions (cluster_id, until) WHERE scope LIKE 'target/%';
CREATE INDEX oscillation_detections_target ON oscillation_detections (cluster_id, namespace, kind, name);
