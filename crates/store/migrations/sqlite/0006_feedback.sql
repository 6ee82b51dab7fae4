-- Feedback: a score a person attached to an inference — an end user through a client key
-- (`source = 'user'`) or a reviewer with an admin credential (`'reviewer'`). `name` says what is
-- scored (`helpful`, `accuracy`…); `kind` how: a boolean (`value_float` 0 or 1), a float
-- (`value_float`), a category (`value_text`) or a comment alone. The inference's route, model,
-- provider, team and product are copied at insert so summaries need no join (and survive the
-- inference's retention). Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS feedback (
    id            TEXT PRIMARY KEY NOT NULL,
    created_at_ms BIGINT NOT NULL,
    inference_id  TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('boolean', 'float', 'category', 'comment')),
    value_float   DOUBLE PRECISION,
    value_text    TEXT,
    comment       TEXT,
    source        TEXT NOT NULL CHECK (source IN ('user', 'reviewer')),
    key_id        TEXT,
    route         TEXT,
    model         TEXT,
    provider      TEXT,
    team          TEXT,
    product       TEXT
);

-- The scores of one inference (`GET /admin/feedback?inference_id=`).
CREATE INDEX IF NOT EXISTS feedback_inference ON feedback (inference_id);
-- Summaries over a time range.
CREATE INDEX IF NOT EXISTS feedback_created_at ON feedback (created_at_ms);
