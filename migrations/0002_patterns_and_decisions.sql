-- Policies seen, detections (the alert record when no cluster is configured), restrictions in
-- force, effectiveness aggregates, retention runs, and every admission decision.

CREATE TABLE oscillation_patterns (
    id                 bigserial PRIMARY KEY,
    cluster_id         text        NOT NULL,
    name               text        NOT NULL,
    source             text        NOT NULL CHECK (source IN ('cluster', 'file', 'default')),
    pattern_type       text        NOT NULL,
    enforcement_action text        NOT NULL DEFAULT 'enforce',
    spec               jsonb       NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, source, name)
);

CREATE TABLE oscillation_detections (
    id                 bigserial PRIMARY KEY,
    cluster_id         text        NOT NULL,
    alert_namespace    text        NOT NULL,
    alert_name         text        NOT NULL,
    pattern_type       text        NOT NULL,
    namespace          text,
    kind               text,
    name               text,
    actor              text        NOT NULL,
    severity           text        NOT NULL,
    confidence         real        NOT NULL,
    strategy           text        NOT NULL,
    enforcement_action text        NOT NULL,
    phase              text        NOT NULL,
    message            text        NOT NULL,
    summary            text        NOT NULL,
    alternative        text,
    evidence           jsonb       NOT NULL DEFAULT '[]',
    occurrences        integer     NOT NULL DEFAULT 0,
    denied_requests    integer     NOT NULL DEFAULT 0,
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    cooldown_until     timestamptz,
    approved_by        text,
    approval_reason    text,
    approved_at        timestamptz,
    approval_used_at   timestamptz,
    approval_used_by   text,
    UNIQUE (cluster_id, alert_namespace, alert_name)
);

CREATE TABLE restrictions (
    id          bigserial PRIMARY KEY,
    cluster_id  text        NOT NULL,
    scope       text        NOT NULL,
    pattern     text        NOT NULL,
    strategy    text        NOT NULL CHECK (strategy IN ('cooling-period', 'block-action')),
    applies     text        NOT NULL CHECK (applies IN ('replicas', 'all')),
    started_at  timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    alert       text        NOT NULL,
    evidence    text        NOT NULL,
    target_key  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX restrictions_scope ON restrictions (cluster_id, scope, until DESC);
CREATE INDEX restrictions_actor ON restrictions (cluster_id, until) WHERE scope LIKE 'actor/%';

CREATE TABLE action_effectiveness_metrics (
    id            bigserial PRIMARY KEY,
    cluster_id    text        NOT NULL,
    scope_type    text        NOT NULL CHECK (scope_type IN ('action_type', 'namespace', 'alert', 'model')),
    scope_value   text        NOT NULL,
    action_type   text        NOT NULL,
    sample_size   integer     NOT NULL,
    mean_score    real        NOT NULL,
    ci_lower      real        NOT NULL,
    ci_upper      real        NOT NULL,
    trend         text        NOT NULL CHECK (trend IN ('improving', 'stable', 'declining')),
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, scope_type, scope_value, action_type)
);

CREATE TABLE retention_operations (
    id                  bigserial PRIMARY KEY,
    cluster_id          text        NOT NULL,
    strategy            text        NOT NULL,
    namespace           text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    actions_removed     bigint      NOT NULL DEFAULT 0,
    partitions_dropped  text[]      NOT NULL DEFAULT '{}',
    result              text        NOT NULL DEFAULT 'running' CHECK (result IN ('running', 'success', 'failure')),
    details             jsonb       NOT NULL DEFAULT '{}'
);

CREATE TABLE admission_decisions (
    id            bigserial PRIMARY KEY,
    cluster_id    text        NOT NULL,
    request_uid   text        NOT NULL,
    decided_at    timestamptz NOT NULL,
    namespace     text,
    kind          text,
    name          text,
    action_type   text,
    actor         text        NOT NULL,
    actor_class   text        NOT NULL,
    outcome       text        NOT NULL,
    allowed       boolean     NOT NULL,
    code          integer,
    pattern       text,
    strategy      text,
    message       text,
    warnings      jsonb       NOT NULL DEFAULT '[]',
    degraded      text,
    latency_ms    real,
    UNIQUE (cluster_id, request_uid)
);
CREATE INDEX admission_decisions_target ON admission_decisions (cluster_id, namespace, kind, name, decided_at DESC);
