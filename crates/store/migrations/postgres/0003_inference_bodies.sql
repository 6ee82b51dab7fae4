-- Request and response bodies of the inferences whose route keeps them (`store_bodies`), apart
-- from `inferences` so the log and the usage scans never read them. Both hold JSON text: the
-- canonical request, and the answer (the whole response, or the streamed text and finish reason).
CREATE TABLE IF NOT EXISTS inference_bodies (
    id            TEXT PRIMARY KEY NOT NULL,
    created_at_ms BIGINT NOT NULL,
    request       TEXT NOT NULL,
    response      TEXT
);

CREATE INDEX IF NOT EXISTS inference_bodies_created_at ON inference_bodies (created_at_ms);
