-- Version 2: the most common search, one service at one level newest first (`/query?service=X&level=error`),
-- reads its page straight off one index instead of filtering every line of the time range
-- (measured at 5M lines: p99 153 ms over one hour with (service, time) and (level, time) alone).
CREATE INDEX IF NOT EXISTS logs_service_level_time ON logs (service, level, time);
