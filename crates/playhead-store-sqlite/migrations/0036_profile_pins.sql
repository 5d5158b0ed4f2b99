-- Parental PINs (issue 17): a profile may require a 4-6 digit PIN before a token is bound to it.
-- Only the argon2 hash (PHC string) is kept; the row goes with its profile.
CREATE TABLE profile_pins (
    profile_id TEXT    NOT NULL PRIMARY KEY REFERENCES profiles (id) ON DELETE CASCADE,
    phc        TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
