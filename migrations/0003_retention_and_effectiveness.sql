-- Retention and effectiveness (DESIGN §7): pattern examples marked as detections are recorded,
-- and indexes for the REST API's newest-first history pages.

-- A trace that is evidence of a detection is a pattern example: pattern-aware retention never
-- deletes it (short of the age limit). Detections replace their evidence on every update, so the
-- mark is set when the evidence is written rather than computed later from what is left.
CREATE FUNCTION sg_mark_pattern_examples() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE resource_action_traces t SET is_pattern_example = true
    WHERE t.cluster_id = NEW.cluster_id
      AND NOT t.is_pattern_example
      AND t.request_uid IN (
          SELECT e->>'requestUid' FROM jsonb_array_elements(NEW.evidence) AS e
          WHERE jsonb_typeof(NEW.evidence) = 'array' AND e ? 'requestUid');
    RETURN NULL;
END;
$$;

CREATE TRIGGER oscillation_detections_pattern_examples
    AFTER INSERT OR UPDATE OF evidence ON oscillation_detections
    FOR EACH ROW EXECUTE FUNCTION sg_mark_pattern_examples();

-- Detections recorded before this migration.
UPDATE resource_action_traces t SET is_pattern_example = true
FROM (
    SELECT DISTINCT d.cluster_id, e->>'requestUid' AS request_uid
    FROM oscillation_detections d, jsonb_array_elements(d.evidence) AS e
    WHERE jsonb_typeof(d.evidence) = 'array' AND e ? 'requestUid'
) AS x
WHERE t.cluster_id = x.cluster_id AND t.request_uid = x.request_uid AND NOT t.is_pattern_example;

-- GET /api/v1/history pages newest first over (action_timestamp, id), cluster-wide or per target.
CREATE INDEX resource_action_traces_page ON resource_action_traces (cluster_id, action_timestamp DESC, id DESC);
CREATE INDEX resource_action_traces_target_page
    ON resource_action_traces (cluster_id, namespace, kind, name, action_timestamp DESC, id DESC);

CREATE INDEX retention_operations_started ON retention_operations (cluster_id, started_at DESC);
