-- External issuers (issue #3): a person signed in at a platform's own identity provider is keyed by
-- (issuer, subject), never by e-mail (an IdP's e-mail claim is not proof of owning a local account).
-- Each link points at an account of ours, created on first sight.
CREATE TABLE external_identities (
    issuer      text   NOT NULL,
    subject     text   NOT NULL,
    account_id  uuid   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    CONSTRAINT external_identities_pkey PRIMARY KEY (issuer, subject)
);
