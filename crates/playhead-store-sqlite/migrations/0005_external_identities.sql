-- External issuers (issue #3): a person signed in at a platform's own identity provider is keyed by
-- (issuer, subject), never by e-mail (an IdP's e-mail claim is not proof of owning a local account).
-- Each link points at an account of ours, created on first sight.
CREATE TABLE external_identities (
    issuer      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT;
