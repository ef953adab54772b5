-- IP restrictions: per account an on/off switch and named ALLOW/DENY lists of networks.
-- setIpRestrictions replaces the whole rule set in one transaction; cidr refuses host bits, as the API does.

CREATE TABLE ip_restrictions (
    account_id  text PRIMARY KEY REFERENCES accounts (id),
    enabled     boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ip_rules (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES ip_restrictions (account_id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    type        text NOT NULL CHECK (type IN ('ALLOW', 'DENY')),
    cidrs       cidr[] NOT NULL CHECK (cardinality(cidrs) > 0),
    position    integer NOT NULL
);
CREATE INDEX ip_rules_account_idx ON ip_rules (account_id, position);
