-- The database's own data version: one row, one more per write that is kept. The R2 path copies
-- the version of each upload into it, so that every version has different bytes (and so a
-- different etag) even when the data is otherwise the same; the Durable Object counts its
-- writing requests in it. It travels with the data through migration and rollback.
CREATE TABLE IF NOT EXISTS data_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO data_version (id, version) VALUES (1, 0);
