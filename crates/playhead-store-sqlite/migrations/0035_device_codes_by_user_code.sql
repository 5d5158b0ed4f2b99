-- The device page tells a person whether a typed code is unknown, expired or already used, so
-- it looks codes up whatever their status (the unique index covers pending ones only).
CREATE INDEX device_codes_user_code ON device_codes (user_code, expires_at);
