-- Logweave store, version 1: lines partitioned by day, and closed trace summaries.
-- Day partitions (logs_pYYYYMMDD) are created by the sink ahead of time and on demand, and
-- dropped whole for retention; there is no DEFAULT partition, so creating one never has to move rows.
CREATE TABLE IF NOT EXISTS logs (
    time        timestamptz NOT NULL,
    line_id     text        NOT NULL,
    trace_id    text        NOT NULL DEFAULT '',
    service     text        NOT NULL DEFAULT '',
    level       text        NOT NULL DEFAULT '',
    message     text        NOT NULL DEFAULT '',
    namespace   text        NOT NULL DEFAULT '',
    pod         text        NOT NULL DEFAULT '',
    container   text        NOT NULL DEFAULT '',
    node        text        NOT NULL DEFAULT '',
    attributes  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tags        text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (line_id, time)
) PARTITION BY RANGE (time);

CREATE INDEX IF NOT EXISTS logs_time ON logs (time);
CREATE INDEX IF NOT EXISTS logs_service_time ON logs (service, time);
CREATE INDEX IF NOT EXISTS logs_level_time ON logs (level, time);
CREATE INDEX IF NOT EXISTS logs_trace ON logs (trace_id);
CREATE INDEX IF NOT EXISTS logs_attributes ON logs USING gin (attributes jsonb_path_ops);
CREATE INDEX IF NOT EXISTS logs_tags ON logs USING gin (tags);
CREATE INDEX IF NOT EXISTS logs_message_fts ON logs USING gin (to_tsvector('simple', message));

CREATE TABLE IF NOT EXISTS traces (
    close_id     text        PRIMARY KEY,
    trace_id     text        NOT NULL,
    first_time   timestamptz NOT NULL,
    last_time    timestamptz NOT NULL,
    duration_ms  double precision NOT NULL,
    line_count   integer     NOT NULL,
    errors       integer     NOT NULL,
    level        text        NOT NULL DEFAULT '',
    services     text[]      NOT NULL DEFAULT '{}',
    pods         text[]      NOT NULL DEFAULT '{}',
    cause        text        NOT NULL DEFAULT '',
    closed_at    timestamptz NOT NULL,
    summary      jsonb       NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_trace ON traces (trace_id);
CREATE INDEX IF NOT EXISTS traces_first_time ON traces (first_time);
CREATE INDEX IF NOT EXISTS traces_services ON traces USING gin (services);
