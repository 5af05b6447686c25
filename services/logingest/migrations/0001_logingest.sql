-- Log-ingest: the org → plan table (projected from TENANCY), the retention
-- status per org, and the Postgres log store (used when no ClickHouse is
-- configured).

CREATE TABLE org_plans (
    org_id     text        PRIMARY KEY,
    plan       text        NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    -- TENANCY stream sequence of the last event applied: a redelivered
    -- older event never overwrites a newer plan.
    seq        bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE retention_status (
    org_id          text        PRIMARY KEY,
    plan            text        NOT NULL,
    retention_days  integer     NOT NULL,
    cutoff          timestamptz NOT NULL,
    run_at          timestamptz NOT NULL,
    lines_deleted   bigint      NOT NULL,
    samples_deleted bigint      NOT NULL
);

-- One row per log line. The primary key is the line's identity and also
-- the newest-first order of an org-wide query (scanned backwards), so
-- an insert of a line already stored is a no-op (ON CONFLICT DO NOTHING).
-- ts is Unix nanoseconds: timestamptz keeps only microseconds.
-- Key columns sort bytewise (COLLATE "C"), like the cursor and
-- ClickHouse.
CREATE TABLE lines (
    org_id         text    COLLATE "C" NOT NULL,
    ts             bigint  NOT NULL,
    agent_id       text    COLLATE "C" NOT NULL,
    source         text    COLLATE "C" NOT NULL,
    container      text    COLLATE "C" NOT NULL,
    stream         text    COLLATE "C" NOT NULL,
    seq            integer NOT NULL,
    container_name text    NOT NULL DEFAULT '',
    stack          text    NOT NULL DEFAULT '',
    level          text    NOT NULL,
    message        text    NOT NULL DEFAULT '',
    raw            text    NOT NULL,
    attrs          jsonb,
    PRIMARY KEY (org_id, ts, agent_id, source, container, stream, seq)
);
-- The shape of a query for one agent: agent fixed, then the same order.
CREATE INDEX lines_by_agent ON lines (org_id, agent_id, ts, source, container, stream, seq);

-- Per-minute roll-ups of metric samples. mask has bit s set when the
-- sample of second s of the minute has been added: an upsert adds a
-- sample only when its bit is clear, so a redelivered sample counts once.
CREATE TABLE metrics_minute (
    org_id    text             NOT NULL,
    agent_id  text             NOT NULL,
    minute    bigint           NOT NULL, -- Unix seconds, a multiple of 60
    scope     text COLLATE "C" NOT NULL,
    id        text COLLATE "C" NOT NULL,
    name      text             NOT NULL,
    mask      bigint           NOT NULL,
    samples   integer          NOT NULL,
    cpu_sum   double precision NOT NULL,
    cpu_max   double precision NOT NULL,
    mem_sum   double precision NOT NULL,
    mem_max   bigint           NOT NULL,
    mem_limit bigint           NOT NULL,
    rx_min    bigint           NOT NULL,
    rx_max    bigint           NOT NULL,
    tx_min    bigint           NOT NULL,
    tx_max    bigint           NOT NULL,
    t_min     bigint           NOT NULL,
    t_max     bigint           NOT NULL,
    PRIMARY KEY (org_id, agent_id, minute, scope, id)
);
CREATE INDEX metrics_minute_by_org ON metrics_minute (org_id, minute);

-- Tenant reads (queries and roll-ups) run as this NOLOGIN role with
-- app.org_id set for the transaction: row-level security makes another
-- org's rows invisible even to a query that forgot its org filter.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'logingest_reader') THEN
        BEGIN
            CREATE ROLE logingest_reader NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'logingest_reader', 'MEMBER') THEN
        EXECUTE format('GRANT logingest_reader TO %I', current_user);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO logingest_reader', current_schema());
END
$$;

GRANT SELECT ON lines, metrics_minute TO logingest_reader;
ALTER TABLE lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE metrics_minute ENABLE ROW LEVEL SECURITY;
CREATE POLICY lines_tenant ON lines FOR SELECT TO logingest_reader
    USING (org_id = current_setting('app.org_id', true));
CREATE POLICY metrics_minute_tenant ON metrics_minute FOR SELECT TO logingest_reader
    USING (org_id = current_setting('app.org_id', true));
