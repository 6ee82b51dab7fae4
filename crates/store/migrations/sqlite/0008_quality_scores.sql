-- Online quality: a sample of production inferences scored after the fact by a judge route —
-- `relevance` (does the answer address the question), `groundedness` (is every claim supported
-- by the context the request carried) and `compliance` (does it follow the route's policy).
-- `score` is in [0, 1] and null when the judge failed (`error` says why); `passed` is the score
-- against the route's threshold. The inference's route, model, provider, team and product are
-- copied so rates need no join. Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS quality_scores (
    id            TEXT PRIMARY KEY NOT NULL,
    created_at_ms BIGINT NOT NULL,
    inference_id  TEXT NOT NULL,
    name          TEXT NOT NULL CHECK (name IN ('relevance', 'groundedness', 'compliance')),
    score         DOUBLE PRECISION,
    passed        BOOLEAN,
    reasoning     TEXT,
    error         TEXT,
    judge_route   TEXT NOT NULL,
    route         TEXT,
    model         TEXT,
    provider      TEXT,
    team          TEXT,
    product       TEXT
);

CREATE INDEX IF NOT EXISTS quality_scores_inference ON quality_scores (inference_id);
CREATE INDEX IF NOT EXISTS quality_scores_created_at ON quality_scores (created_at_ms);
