-- The human review queue: a conversation a route handed to a reviewer (a guard said `escalate`,
-- the model refused, or the caller asked), its state and the reviewer's answer. `status` moves
-- open → claimed → answered → closed (answer and close may skip steps); every move is a
-- conditional UPDATE, audited in the same transaction. `conversation` is JSON text, redacted
-- before it is stored. Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS escalations (
    id             TEXT PRIMARY KEY NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'answered', 'closed')),
    reason         TEXT NOT NULL,
    route          TEXT NOT NULL,
    team           TEXT,
    product        TEXT,
    key_id         TEXT,
    end_user       TEXT,
    inference_id   TEXT,
    conversation   TEXT NOT NULL,
    claimed_by     TEXT,
    claimed_at_ms  BIGINT,
    answer         TEXT,
    answered_by    TEXT,
    answered_at_ms BIGINT,
    closed_at_ms   BIGINT,
    callback_url   TEXT
);

-- The queue in order (`WHERE status = ? ORDER BY created_at_ms`) and the backlog gauges.
CREATE INDEX IF NOT EXISTS escalations_status_created ON escalations (status, created_at_ms);
