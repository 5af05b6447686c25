CREATE TABLE notes (
    event_id text PRIMARY KEY,
    org_id   text NOT NULL,
    text     text NOT NULL
);
