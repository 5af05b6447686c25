-- Read models of the tenancy service. They are projections of the TENANCY
-- stream, written only by the projection consumer (as the schema owner) and
-- rebuildable from the stream. `version` is the stream sequence of the
-- aggregate's last event the row reflects: the projection writes a row only
-- when it is newer, so redelivered and out-of-order events are harmless.
--
-- Tenant tables carry org_id and row-level security: the service's read
-- paths switch to the NOLOGIN role tenancy_reader and set app.org_id (and
-- app.user_id for a user's own memberships) for the transaction, so the
-- database itself hides every other org's rows. Table owners and superusers
-- bypass RLS, which is why reads switch role and projections need not.

CREATE TABLE orgs (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    plan       text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    version    bigint      NOT NULL
);
CREATE INDEX orgs_slug ON orgs (slug) WHERE NOT deleted;

CREATE TABLE memberships (
    org_id    text        NOT NULL,
    user_id   text        NOT NULL,
    role      text        NOT NULL,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
-- The gateway asks for a membership on every request (primary key) and for
-- a user's default org (first joined) when no X-Org-ID is sent.
CREATE INDEX memberships_user ON memberships (user_id, joined_at, org_id);

CREATE TABLE invitations (
    id          text        PRIMARY KEY,
    org_id      text        NOT NULL,
    email       text        NOT NULL,
    role        text        NOT NULL,
    token_hash  text        NOT NULL UNIQUE,
    invited_by  text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_by text,
    accepted_at timestamptz,
    revoked     boolean     NOT NULL DEFAULT false,
    version     bigint      NOT NULL
);
CREATE INDEX invitations_org ON invitations (org_id, id);

CREATE TABLE enrollment_tokens (
    id           text        PRIMARY KEY,
    org_id       text        NOT NULL,
    name         text        NOT NULL,
    token_hash   text        NOT NULL UNIQUE,
    max_uses     integer     NOT NULL,
    uses         integer     NOT NULL,
    expires_at   timestamptz,
    labels       jsonb       NOT NULL DEFAULT '{}',
    revoked      boolean     NOT NULL DEFAULT false,
    deleted      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    version      bigint      NOT NULL
);
CREATE INDEX enrollment_tokens_org ON enrollment_tokens (org_id, id) WHERE NOT deleted;

-- Machines enrolled in an org (one row per fingerprint), counted against
-- the plan's agent limit.
CREATE TABLE enrolled_agents (
    org_id      text        NOT NULL,
    fingerprint text        NOT NULL,
    token_id    text        NOT NULL,
    enrolled_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, fingerprint)
);

DO $$
BEGIN
    -- Roles are global to the cluster: another database (another test,
    -- another installation) may have created it, even concurrently.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenancy_reader') THEN
        BEGIN
            CREATE ROLE tenancy_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- The service's own login must be allowed to SET ROLE to it.
    IF NOT pg_has_role(current_user, 'tenancy_reader', 'MEMBER') THEN
        EXECUTE format('GRANT tenancy_reader TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO tenancy_reader', current_schema());
END
$$;

GRANT SELECT ON orgs, memberships, invitations, enrollment_tokens, enrolled_agents TO tenancy_reader;

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE enrollment_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE enrolled_agents ENABLE ROW LEVEL SECURITY;

-- A membership is visible in its org, and to its own user (the user's list
-- of orgs). An unset setting reads as NULL or '', which matches nothing.
CREATE POLICY memberships_tenant ON memberships FOR SELECT TO tenancy_reader
    USING (org_id = current_setting('app.org_id', true)
        OR user_id = current_setting('app.user_id', true));
CREATE POLICY orgs_tenant ON orgs FOR SELECT TO tenancy_reader
    USING (id = current_setting('app.org_id', true)
        OR id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = current_setting('app.user_id', true)));
CREATE POLICY invitations_tenant ON invitations FOR SELECT TO tenancy_reader
    USING (org_id = current_setting('app.org_id', true));
CREATE POLICY enrollment_tokens_tenant ON enrollment_tokens FOR SELECT TO tenancy_reader
    USING (org_id = current_setting('app.org_id', true));
CREATE POLICY enrolled_agents_tenant ON enrolled_agents FOR SELECT TO tenancy_reader
    USING (org_id = current_setting('app.org_id', true));
