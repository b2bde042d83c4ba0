-- The MQTT connection history of the device gateway and what its nodes share; mirrors
-- migrations/sqlite/0013_connections.sql (see there for the why). Text compares in byte
-- order (COLLATE "C") as on SQLite.

CREATE TABLE connections (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id         TEXT COLLATE "C" NOT NULL,
    region             TEXT COLLATE "C" NOT NULL,
    certificate_id     TEXT COLLATE "C" NOT NULL,
    client_id          TEXT COLLATE "C" NOT NULL,
    thing_name         TEXT COLLATE "C",
    source_ip          TEXT COLLATE "C" NOT NULL,
    source_port        BIGINT,
    node_id            TEXT COLLATE "C",
    connected_at_ms    BIGINT  NOT NULL,
    disconnected_at_ms BIGINT,
    disconnect_reason  TEXT COLLATE "C",
    clean_session      BOOLEAN,
    keep_alive_secs    BIGINT,
    messages_in        BIGINT  NOT NULL,
    messages_out       BIGINT  NOT NULL,
    bytes_in           BIGINT  NOT NULL,
    bytes_out          BIGINT  NOT NULL
);

CREATE INDEX connections_by_client
    ON connections (account_id, region, client_id, connected_at_ms, id);
CREATE INDEX connections_open_by_client
    ON connections (account_id, region, client_id)
    WHERE disconnected_at_ms IS NULL;
CREATE INDEX connections_by_certificate
    ON connections (account_id, region, certificate_id, connected_at_ms, id);
CREATE INDEX connections_by_thing
    ON connections (account_id, region, thing_name, connected_at_ms, id)
    WHERE thing_name IS NOT NULL;
CREATE INDEX connections_open_by_node
    ON connections (node_id)
    WHERE disconnected_at_ms IS NULL;
CREATE INDEX connections_for_purge
    ON connections (disconnected_at_ms)
    WHERE disconnected_at_ms IS NOT NULL;

CREATE TABLE gateway_secrets (
    name  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE registry_epoch (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch BIGINT  NOT NULL
);
INSERT INTO registry_epoch (id, epoch) VALUES (1, 0);
