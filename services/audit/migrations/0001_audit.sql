-- The audit service's Postgres projection. Every table here is written only
-- by the audit service's projection consumers, from stream AUDIT, and can be
-- dropped and rebuilt from it. Entries and checkpoints are append-only: the
-- database itself refuses UPDATE, DELETE and TRUNCATE, except DELETE and
-- TRUNCATE by a session running as the retention role (SET ROLE
-- audit_retention), which the retention job and a projection rebuild use.

-- One row per link of an org's hash chain, exactly as on the stream. The
-- columns are the fields of events.AuditEntry; "time" is the string that was
-- hashed, "at" its parsed value for filtering. details is type json (not
-- jsonb) so that its text is kept verbatim.
CREATE TABLE entries (
    org_id        text        NOT NULL,
    entry_index   bigint      NOT NULL CHECK (entry_index >= 1),
    prev_hash     text        NOT NULL,
    hash          text        NOT NULL,
    event_id      text        NOT NULL,
    time          text        NOT NULL,
    at            timestamptz NOT NULL,
    actor_kind    text        NOT NULL,
    actor_id      text        NOT NULL,
    actor_ip      text        NOT NULL DEFAULT '',
    actor_ua      text        NOT NULL DEFAULT '',
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   text        NOT NULL,
    outcome       text        NOT NULL,
    details       json,
    stream_seq    bigint      NOT NULL,
    projected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, entry_index),
    UNIQUE (org_id, event_id)
);

CREATE INDEX entries_org_at ON entries (org_id, at);
CREATE INDEX entries_org_action ON entries (org_id, action text_pattern_ops, entry_index);
CREATE INDEX entries_org_resource ON entries (org_id, resource_type, entry_index);
CREATE INDEX entries_org_actor ON entries (org_id, actor_id, entry_index);

-- Signed checkpoints as published on audit.checkpoint.<org>. Two replicas
-- may sign the same index; each checkpoint is its own stream message.
CREATE TABLE checkpoints (
    org_id           text        NOT NULL,
    checkpoint_index bigint      NOT NULL,
    hash             text        NOT NULL,
    time             text        NOT NULL,
    at               timestamptz NOT NULL,
    key_id           text        NOT NULL,
    signature        text        NOT NULL,
    stream_seq       bigint      NOT NULL,
    PRIMARY KEY (org_id, stream_seq)
);

CREATE INDEX checkpoints_org_index ON checkpoints (org_id, checkpoint_index);

-- The Ed25519 keys checkpoints are signed with. One is active; replicas
-- starting together race to insert it and all use the winner.
CREATE TABLE signing_keys (
    key_id      text        PRIMARY KEY,
    algorithm   text        NOT NULL DEFAULT 'Ed25519',
    public_key  bytea       NOT NULL,
    private_key bytea       NOT NULL,
    active      boolean     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (active) WHERE active;

-- Each org's audit configuration, projected from audit.config.updated.
CREATE TABLE config (
    org_id           text        PRIMARY KEY,
    retention_days   integer     NOT NULL,
    retention_policy text        NOT NULL,
    compliance_mode  boolean     NOT NULL,
    updated_at       timestamptz NOT NULL,
    updated_by       text        NOT NULL DEFAULT '',
    stream_seq       bigint      NOT NULL
);

-- Append-only enforcement. current_user is the role a session acts as, so
-- only a session that ran SET ROLE audit_retention may delete.
CREATE FUNCTION refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') AND current_user = 'audit_retention' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit.%: % refused: the audit log is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'only the retention job (SET ROLE audit_retention) may prune';
END
$$;

CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

-- The retention role: cluster-wide, so create it once and tolerate another
-- database (or a concurrent migration) having done so. A service user
-- without CREATEROLE cannot create it; the migration then goes on and the
-- operator creates the role (see docs/audit.md) — until then nothing can
-- prune, which is the safe failure.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'audit_retention') THEN
        BEGIN
            CREATE ROLE audit_retention NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role audit_retention: create it as an administrator';
                RETURN;
        END;
    END IF;
    BEGIN
        EXECUTE format('GRANT audit_retention TO %I', current_user);
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'cannot grant audit_retention to %: %', current_user, SQLERRM;
    END;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO audit_retention', current_schema());
    GRANT SELECT, DELETE, TRUNCATE ON entries, checkpoints TO audit_retention;
END
$$;
