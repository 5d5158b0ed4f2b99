-- Devices and sessions (issue 17, decision 0091): where and when each session was last used
-- (a sign-in or a token refresh), so an account can list its devices and sign them out.
ALTER TABLE sessions ADD COLUMN first_addr TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
ALTER TABLE sessions ADD COLUMN last_addr TEXT;
CREATE INDEX sessions_live_by_account ON sessions (account_id) WHERE revoked_at IS NULL;
