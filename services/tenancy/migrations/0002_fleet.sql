-- The fleet: enrolled agents (projected from the agent aggregate) and
-- their presence (written from heartbeats and metrics; telemetry, not
-- events: only the online/offline transitions are events).
CREATE TABLE agents (
    id                text        PRIMARY KEY,
    org_id            text        NOT NULL,
    fingerprint       text        NOT NULL,
    hostname          text        NOT NULL,
    os                text        NOT NULL,
    arch              text        NOT NULL,
    agent_version     text        NOT NULL,
    labels            jsonb       NOT NULL DEFAULT '{}',
    token_id          text        NOT NULL,
    credential_key    text        NOT NULL,
    status            text        NOT NULL,
    status_changed_at timestamptz NOT NULL,
    enrolled_at       timestamptz NOT NULL,
    deleted           boolean     NOT NULL DEFAULT false,
    version           bigint      NOT NULL
);
CREATE INDEX agents_org ON agents (org_id, id) WHERE NOT deleted;
-- One live agent per machine and org.
CREATE UNIQUE INDEX agents_fingerprint ON agents (org_id, fingerprint) WHERE NOT deleted;
CREATE INDEX agents_online ON agents (status) WHERE NOT deleted AND status = 'online';

CREATE TABLE agent_presence (
    agent_id       text        PRIMARY KEY,
    org_id         text        NOT NULL,
    last_seen      timestamptz NOT NULL,
    engine         text        NOT NULL DEFAULT '',
    agent_version  text        NOT NULL DEFAULT '',
    hostname       text        NOT NULL DEFAULT '',
    started_at     timestamptz,
    outbox_pending bigint      NOT NULL DEFAULT 0,
    metrics        jsonb,
    metrics_at     timestamptz
);

GRANT SELECT ON agents, agent_presence TO tenancy_reader;
ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_presence ENABLE ROW LEVEL SECURITY;
CREATE POLICY agents_tenant ON agents FOR SELECT TO tenancy_reader
    USING (org_id = current_setting('app.org_id', true));
CREATE POLICY agent_presence_tenant ON agent_presence FOR SELECT TO tenancy_reader
    USING (org_id = current_setting('app.org_id', true));
