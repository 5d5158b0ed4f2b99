-- Parental PINs (issue 17): a profile may require a 4-6 digit PIN before a token is bound to it.
-- Only the argon2 hash (PHC string) is kept; the row goes with its profile.
CREATE TABLE profile_pins (
    profile_id uuid   NOT NULL,
    phc        text   NOT NULL,
    updated_at bigint NOT NULL,
    CONSTRAINT profile_pins_pkey PRIMARY KEY (profile_id),
    CONSTRAINT profile_pins_profile_fkey FOREIGN KEY (profile_id) REFERENCES profiles (id) ON DELETE CASCADE
);
