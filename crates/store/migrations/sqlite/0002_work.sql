-- Durable background work (leased queue items) and once-only markers.

CREATE TABLE work_items (
    id                  TEXT    NOT NULL PRIMARY KEY,
    queue               TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    run_after_ms        BIGINT  NOT NULL,
    lease_owner         TEXT,
    lease_expires_at_ms BIGINT
);

-- Claiming walks due items of one queue oldest first.
CREATE INDEX work_items_due ON work_items (queue, run_after_ms, id);

CREATE TABLE once_markers (
    key          TEXT   NOT NULL PRIMARY KEY,
    marked_at_ms BIGINT NOT NULL
);
