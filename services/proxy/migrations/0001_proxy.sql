-- Read models of the proxy service: projections of the PROXY stream,
-- written only by the projection consumer (as the schema owner) and
-- rebuildable from the stream. `version` is the stream sequence of the
-- aggregate's last event the row reflects: the projection writes a row only
-- when it is newer, so redelivered and out-of-order events are harmless.
--
-- Both tables carry org_id and row-level security: the service's tenant
-- reads switch to the NOLOGIN role proxy_reader and set app.org_id for the
-- transaction, so the database itself hides every other org's rows. The
-- certificate worker's scan is cross-tenant by nature and runs as the owner.

CREATE TABLE hosts (
    id                   text        PRIMARY KEY,
    org_id               text        NOT NULL,
    agent_id             text        NOT NULL,
    spec                 jsonb       NOT NULL,
    -- Copied out of spec for the duplicate-domain check and the
    -- certificate scan.
    domains              text[]      NOT NULL,
    enabled              boolean     NOT NULL,
    ssl_enabled          boolean     NOT NULL,
    -- pending, applied or failed (disabled is derived from enabled).
    status               text        NOT NULL,
    status_message       text        NOT NULL DEFAULT '',
    applied_revision     bigint      NOT NULL DEFAULT 0,
    -- Sequence of the host's last event that changes its rendering.
    render_version       bigint      NOT NULL,
    cert_status          text        NOT NULL DEFAULT 'none',
    cert_reason          text        NOT NULL DEFAULT '',
    cert_request_domains text[]      NOT NULL DEFAULT '{}',
    cert_requested_at    timestamptz,
    cert_attempts        integer     NOT NULL DEFAULT 0,
    cert_last_error      text        NOT NULL DEFAULT '',
    cert_next_attempt_at timestamptz,
    -- The last issued certificate (kept through a failed renewal).
    cert_domains         text[]      NOT NULL DEFAULT '{}',
    cert_not_before      timestamptz,
    cert_not_after       timestamptz,
    cert_renew_at        timestamptz,
    cert_issuer          text        NOT NULL DEFAULT '',
    cert_serial          text        NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    deleted              boolean     NOT NULL DEFAULT false,
    version              bigint      NOT NULL
);
CREATE INDEX hosts_agent ON hosts (org_id, agent_id, id) WHERE NOT deleted;
CREATE INDEX hosts_domains ON hosts USING gin (domains) WHERE NOT deleted;
CREATE INDEX hosts_cert ON hosts (cert_status) WHERE NOT deleted AND cert_status <> 'none';

CREATE TABLE agent_settings (
    org_id           text        NOT NULL,
    agent_id         text        NOT NULL,
    mode             text        NOT NULL,
    acme_email       text        NOT NULL DEFAULT '',
    networks         text[]      NOT NULL DEFAULT '{}',
    -- What the agent reported about its nginx (events.NginxAgentInfo).
    nginx            jsonb,
    applied_revision bigint      NOT NULL DEFAULT 0,
    last_error       text        NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL,
    version          bigint      NOT NULL,
    PRIMARY KEY (org_id, agent_id)
);

DO $$
BEGIN
    -- Roles are global to the cluster: another database (another test,
    -- another installation) may have created it, even concurrently.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'proxy_reader') THEN
        BEGIN
            CREATE ROLE proxy_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- The service's own login must be allowed to SET ROLE to it.
    IF NOT pg_has_role(current_user, 'proxy_reader', 'MEMBER') THEN
        EXECUTE format('GRANT proxy_reader TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO proxy_reader', current_schema());
END
$$;

GRANT SELECT ON hosts, agent_settings TO proxy_reader;
ALTER TABLE hosts ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_settings ENABLE ROW LEVEL SECURITY;
-- An unset setting reads as NULL or '', which matches nothing.
CREATE POLICY hosts_tenant ON hosts FOR SELECT TO proxy_reader
    USING (org_id = current_setting('app.org_id', true));
CREATE POLICY agent_settings_tenant ON agent_settings FOR SELECT TO proxy_reader
    USING (org_id = current_setting('app.org_id', true));
