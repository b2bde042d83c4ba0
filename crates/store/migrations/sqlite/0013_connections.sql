-- The MQTT connection history of the device gateway (issue 15) and what its nodes share;
-- mirrored by migrations/postgres/0013_connections.sql.

-- One row per connection, through the gateway or imported. The id (a UUID) is global,
-- so a node can ask about sessions of any account (closed_connections_among).
-- disconnected_at_ms is NULL while the connection is open.
CREATE TABLE connections (
    id                 TEXT    NOT NULL PRIMARY KEY,
    account_id         TEXT    NOT NULL,
    region             TEXT    NOT NULL,
    certificate_id     TEXT    NOT NULL,
    client_id          TEXT    NOT NULL,
    thing_name         TEXT,
    source_ip          TEXT    NOT NULL,
    source_port        BIGINT,
    node_id            TEXT,
    connected_at_ms    BIGINT  NOT NULL,
    disconnected_at_ms BIGINT,
    disconnect_reason  TEXT,
    clean_session      BOOLEAN,
    keep_alive_secs    BIGINT,
    messages_in        BIGINT  NOT NULL,
    messages_out       BIGINT  NOT NULL,
    bytes_in           BIGINT  NOT NULL,
    bytes_out          BIGINT  NOT NULL
);

-- The CONFLICTING_CLIENT_IDS_CHECK sweep and GetThingConnectivityData's fallback (a
-- client id's connections in time order).
CREATE INDEX connections_by_client
    ON connections (account_id, region, client_id, connected_at_ms, id);
-- The takeover on connect: the open connection of a client id, found without walking the
-- client id's history (a device reconnecting every minute has tens of thousands of rows).
CREATE INDEX connections_open_by_client
    ON connections (account_id, region, client_id)
    WHERE disconnected_at_ms IS NULL;
-- DEVICE_CERTIFICATE_SHARED_CHECK's sweep: a certificate's connections in time order.
CREATE INDEX connections_by_certificate
    ON connections (account_id, region, certificate_id, connected_at_ms, id);
-- GetThingConnectivityData: a thing's newest connection.
CREATE INDEX connections_by_thing
    ON connections (account_id, region, thing_name, connected_at_ms, id)
    WHERE thing_name IS NOT NULL;
-- A node's start closes what it left open; partial, so only open connections are in it.
CREATE INDEX connections_open_by_node
    ON connections (node_id)
    WHERE disconnected_at_ms IS NULL;
-- The retention purge of closed connections, across all scopes.
CREATE INDEX connections_for_purge
    ON connections (disconnected_at_ms)
    WHERE disconnected_at_ms IS NOT NULL;

-- The gateway's TLS material (its CA and server key), shared by every node; not per
-- account.
CREATE TABLE gateway_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

-- One row: a counter every registry change the gateway must re-read bumps, so each node
-- polls one value to learn of changes made through another.
CREATE TABLE registry_epoch (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    epoch BIGINT  NOT NULL
);
INSERT INTO registry_epoch (id, epoch) VALUES (1, 0);
