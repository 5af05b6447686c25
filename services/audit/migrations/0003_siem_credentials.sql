-- SIEM read credentials (POST /audit/siem-credentials), projected from the
-- audit.siem_credential.* events. The credentials themselves are never
-- stored: a row names the NATS user by its public key (user_key), which is
-- what revocation needs. created_seq orders the list; stream_seq is the
-- last event projected into the row.
CREATE TABLE siem_credentials (
    org_id        text        NOT NULL,
    credential_id text        NOT NULL,
    name          text        NOT NULL,
    user_key      text        NOT NULL,
    consumer      text        NOT NULL,
    subject       text        NOT NULL,
    inbox_prefix  text        NOT NULL,
    created_by    text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    revoked_by    text        NOT NULL DEFAULT '',
    revoked_at    timestamptz,
    created_seq   bigint      NOT NULL,
    stream_seq    bigint      NOT NULL,
    PRIMARY KEY (org_id, credential_id)
);

CREATE INDEX siem_credentials_org_seq ON siem_credentials (org_id, created_seq);
