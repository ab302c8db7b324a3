-- Issue 15: a refusal in one statement, and hot-path reads whose plans cannot go wrong.
--
-- A detection is upserted on every refused request, and its evidence is usually what it was
-- (refused requests are not history). Marking pattern examples then found nothing new but still
-- ran, once per refusal: fire only when the evidence is new or changed. An INSERT has no OLD, so the two cases are two triggers.
DROP TRIGGER IF EXISTS oscillation_detections_pattern_examples ON oscillation_detections;

CREATE TRIGGER oscillation_detections_pattern_examples
    AFTER INSERT ON oscillation_detections
    FOR EACH ROW EXECUTE FUNCTION sg_mark_pattern_examples();

CREATE TRIGGER oscillation_detections_pattern_examples_changed
    AFTER UPDATE OF evidence ON oscillation_detections
    FOR EACH ROW WHEN (OLD.evidence IS DISTINCT FROM NEW.evidence)
    EXECUTE FUNCTION sg_mark_pattern_examples();

-- Detection counts every action but those marked not-applied (DESIGN §7): an anti-join on this
-- small partial index, whatever plan the statistics of the moment suggest.
CREATE INDEX IF NOT EXISTS action_status_not_applied ON action_status (cluster_id, request_uid)
    WHERE status = 'not-applied';
