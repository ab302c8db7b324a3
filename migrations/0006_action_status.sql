-- Truthful history (DESIGN §7, issue 13): an admitted change is first only proposed; the cluster
-- confirms it (a watch sees it land) or it is marked not-applied (a later admission webhook or the
-- API server refused it, a 409 AlreadyExists, a conflict retry that landed under another review).
-- One row per admitted review whose change the gate can confirm. An action with no row here was
-- recorded without a cluster to confirm against (or while PostgreSQL was down): it counts.
CREATE TABLE action_status (
    cluster_id        text        NOT NULL,
    request_uid       text        NOT NULL,
    status            text        NOT NULL DEFAULT 'proposed'
        CHECK (status IN ('proposed', 'confirmed', 'not-applied')),
    proposed_at       timestamptz NOT NULL,
    operation         text        NOT NULL CHECK (operation IN ('CREATE', 'UPDATE')),
    -- The object the review would change: the workload itself, or the PipelineRun it creates.
    subject_kind      text        NOT NULL,
    subject_namespace text        NOT NULL,
    subject_name      text        NOT NULL,
    old_version       text,                 -- oldObject's resourceVersion (UPDATE)
    change            jsonb       NOT NULL, -- the fields the change sets, as the watch will see them
    target_key        text,                 -- the history key whose cache a resolution invalidates
    actor             text        NOT NULL,
    object_uid        text,                 -- the object whose state confirmed it
    observed_version  text,
    resolved_at       timestamptz,
    reason            text,
    PRIMARY KEY (cluster_id, request_uid)
);

CREATE INDEX action_status_pending ON action_status (cluster_id, subject_namespace, subject_kind, subject_name)
    WHERE status = 'proposed';
CREATE INDEX action_status_age ON action_status (cluster_id, proposed_at) WHERE status = 'proposed';
-- A created object confirms one creation only (a 409 re-create of the same name confirms nothing).
CREATE UNIQUE INDEX action_status_created_once ON action_status (cluster_id, object_uid)
    WHERE operation = 'CREATE' AND status = 'confirmed';

-- The uids of the recorded actions a restriction was started on: when one of them turns out
-- never to have happened, the restriction is withdrawn (it was judged on something untrue).
ALTER TABLE restrictions ADD COLUMN evidence_uids text[] NOT NULL DEFAULT '{}';
CREATE INDEX restrictions_evidence_uids ON restrictions USING gin (evidence_uids);

-- Counts an OscillationAlert and PostgreSQL agree on (issue 13, item 7). denied_requests: requests
-- the gate refused (allowed: false) under this alert. warned_requests: requests it admitted with a
-- "would deny" warning under it (warn-mode enforcement, or a person's change during a restriction).
ALTER TABLE oscillation_detections ADD COLUMN warned_requests integer NOT NULL DEFAULT 0;
