-- The auth service's schema. Two kinds of tables:
--
-- Read models, written only by the auth_projection consumer from the AUTH
-- stream (users, sessions, api_keys; signing_keys.activated_at). Each row
-- also serves as a snapshot of its aggregate at "version" (the stream
-- sequence of the last event applied); the write side replays only the
-- events after it.
--
-- The secret store, written by command handlers: secrets and verifiers that
-- events must never carry (password hashes, digests of refresh tokens, API
-- keys, MFA tokens and backup codes, sealed TOTP secrets and signing keys),
-- and the login-throttle counters.

CREATE TABLE users (
    id            text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL,
    mfa_enabled   boolean NOT NULL DEFAULT false,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    last_login_at timestamptz,
    version       bigint NOT NULL
);

CREATE TABLE sessions (
    id             text PRIMARY KEY,
    user_id        text NOT NULL,
    generation     bigint NOT NULL,
    mfa            boolean NOT NULL DEFAULT false,
    revoked_reason text,
    started_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        bigint NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    org_id     text NOT NULL,
    name       text NOT NULL,
    role       text NOT NULL,
    prefix     text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    version    bigint NOT NULL
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at DESC);

-- Secret store.

CREATE TABLE credentials (
    user_id       text PRIMARY KEY,
    password_hash text NOT NULL, -- argon2id PHC string
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY, -- SHA-256 of the token
    session_id text NOT NULL,
    generation bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE mfa_secrets (
    user_id    text PRIMARY KEY,
    secret_enc bytea NOT NULL,          -- AES-256-GCM, bound to the user id
    last_step  bigint NOT NULL DEFAULT 0, -- last TOTP time step accepted (replay guard)
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mfa_backup_codes (
    user_id   text NOT NULL,
    code_hash bytea NOT NULL, -- SHA-256 of the normalised 80-bit code
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    token_hash bytea PRIMARY KEY, -- SHA-256 of the mfa_token
    user_id    text NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL
);

CREATE TABLE api_key_secrets (
    key_hash bytea PRIMARY KEY, -- SHA-256 of the key
    key_id   text NOT NULL UNIQUE,
    org_id   text NOT NULL
);

-- Last use of each API key: written by apikey_verify at most once a
-- minute per key; too chatty to be an event.
CREATE TABLE api_key_usage (
    key_id       text PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY, -- RFC 7638 thumbprint
    private_key_enc bytea NOT NULL,   -- Ed25519 seed, AES-256-GCM, bound to the kid
    public_key      bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz       -- set by the projection of auth.signing_key.rotated
);

-- The key that seals TOTP secrets and signing keys when none is configured.
CREATE TABLE sealing_key (
    id  integer PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL
);

CREATE TABLE login_throttle (
    key             text PRIMARY KEY, -- acct:<email hash> | ip:<address> | mfa:<user id>
    failures        integer NOT NULL,
    last_failure_at timestamptz NOT NULL,
    locked_until    timestamptz
);
