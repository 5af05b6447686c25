-- Read models of the audit service's operations: export jobs, stored
-- reports, SIEM destinations and the memberships user activity is linked
-- by. Each is a projection of events (rebuildable from the streams), except
-- forwarding_secrets: secrets never go into an event, so this table is
-- where they live, referenced from the events by a random secret_id.

-- One row per export job, the fold of its audit.export.* events.
CREATE TABLE exports (
    org_id       text        NOT NULL,
    export_id    text        NOT NULL,
    purpose      text        NOT NULL,
    format       text        NOT NULL,
    range_from   text        NOT NULL DEFAULT '',
    range_to     text        NOT NULL DEFAULT '',
    from_index   bigint      NOT NULL DEFAULT 0,
    to_index     bigint      NOT NULL DEFAULT 0,
    status       text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    rows_written bigint      NOT NULL DEFAULT 0,
    bytes        bigint      NOT NULL DEFAULT 0,
    sha256       text        NOT NULL DEFAULT '',
    first_index  bigint      NOT NULL DEFAULT 0,
    last_index   bigint      NOT NULL DEFAULT 0,
    bucket       text        NOT NULL DEFAULT '',
    object       text        NOT NULL DEFAULT '',
    error        text        NOT NULL DEFAULT '',
    requested_by text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    created_seq  bigint      NOT NULL,
    stream_seq   bigint      NOT NULL,
    PRIMARY KEY (org_id, export_id)
);

CREATE INDEX exports_org_seq ON exports (org_id, created_seq);

-- One row per stored report (audit.report.generated).
CREATE TABLE reports (
    org_id       text        NOT NULL,
    report_id    text        NOT NULL,
    kind         text        NOT NULL,
    range_from   text        NOT NULL,
    range_to     text        NOT NULL,
    format       text        NOT NULL,
    entries      bigint      NOT NULL,
    first_index  bigint      NOT NULL DEFAULT 0,
    last_index   bigint      NOT NULL DEFAULT 0,
    bucket       text        NOT NULL,
    objects      jsonb       NOT NULL,
    requested_by text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    stream_seq   bigint      NOT NULL,
    PRIMARY KEY (org_id, report_id)
);

CREATE INDEX reports_org_seq ON reports (org_id, stream_seq);

-- Each org's SIEM destinations, projected from audit.forwarding.updated
-- (the whole list, secrets referenced by id only).
CREATE TABLE forwarding (
    org_id       text        PRIMARY KEY,
    destinations jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL,
    stream_seq   bigint      NOT NULL
);

-- The destinations' secrets (webhook HMAC keys, Splunk HEC tokens). Written
-- by the configuration operation before the event that references them;
-- never returned by any operation, never logged.
CREATE TABLE forwarding_secrets (
    org_id         text        NOT NULL,
    destination_id text        NOT NULL,
    secret_id      text        NOT NULL,
    secret         text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, destination_id, secret_id)
);

-- Membership changes from stream TENANCY, one row per event, so that "was
-- user U a member of org O at time T" has one answer whatever order the
-- events are projected in. change is added, role_changed, removed or
-- org_deleted (user_id empty).
CREATE TABLE memberships (
    stream_seq bigint      PRIMARY KEY,
    org_id     text        NOT NULL,
    user_id    text        NOT NULL,
    change     text        NOT NULL,
    at         timestamptz NOT NULL
);

CREATE INDEX memberships_user ON memberships (user_id, org_id, at);
CREATE INDEX memberships_org ON memberships (org_id, change);
