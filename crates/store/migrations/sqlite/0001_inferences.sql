-- One row per request answered by the gateway (chat or embeddings), written by the batching
-- writer. Types are chosen to read the same in SQLite and Postgres: BIGINT, DOUBLE PRECISION,
-- BOOLEAN and TEXT. `attempts` and `tags` hold JSON text.
CREATE TABLE inferences (
    id                  TEXT PRIMARY KEY NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    request_id          TEXT NOT NULL,
    endpoint            TEXT NOT NULL,
    route               TEXT,
    model               TEXT,
    provider            TEXT,
    key_id              TEXT,
    team                TEXT,
    product             TEXT,
    end_user            TEXT,
    status              INTEGER NOT NULL,
    error_kind          TEXT,
    error_message       TEXT,
    stream              BOOLEAN NOT NULL,
    input_tokens        BIGINT,
    cached_input_tokens BIGINT,
    output_tokens       BIGINT,
    reasoning_tokens    BIGINT,
    tokens_estimated    BOOLEAN NOT NULL,
    cost_usd            DOUBLE PRECISION,
    latency_ms          DOUBLE PRECISION NOT NULL,
    ttft_ms             DOUBLE PRECISION,
    finish_reason       TEXT,
    attempts            TEXT NOT NULL,
    tags                TEXT NOT NULL
);

CREATE INDEX inferences_created_at ON inferences (created_at_ms);
CREATE INDEX inferences_route_created_at ON inferences (route, created_at_ms);
CREATE INDEX inferences_team_created_at ON inferences (team, created_at_ms);
