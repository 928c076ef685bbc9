-- tuisong embedded schema, version 2, applied on top of version 1: the indexes that let
-- the retention sweeps find what to delete in bounded batches, and the per-user bound on
-- login codes find a user's codes, without scanning a table. The inbox has no index by
-- msgid: every send writes an inbox row, and that index cost the send path ~10 % (bench
-- send, 2026-12-04); a sweep deletes a user's entries through the primary key instead.
CREATE INDEX IF NOT EXISTS login_codes_expiry ON login_codes (expires_at);
CREATE INDEX IF NOT EXISTS login_codes_user ON login_codes (appid, openid, expires_at) WHERE used_at IS NULL;
CREATE INDEX IF NOT EXISTS messages_finished ON messages (created_at) WHERE status IN ('delivered', 'recalled', 'cancelled', 'expired');
CREATE INDEX IF NOT EXISTS push_outbox_done ON push_outbox (created_at) WHERE status <> 'pending';
CREATE INDEX IF NOT EXISTS push_attempts_at ON push_attempts (at);
CREATE INDEX IF NOT EXISTS stats_hour ON stats (hour);
CREATE INDEX IF NOT EXISTS counters_window ON counters (window_start);
