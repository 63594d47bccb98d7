-- 0001: organisations, users and their roles.
CREATE TABLE organization (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    country_code char(2) NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    type         text NOT NULL CHECK (type IN ('CUSTOMER', 'SUPPLIER', 'OPERATOR')),
    CONSTRAINT organization_name_key UNIQUE (name)
);

CREATE TABLE user_account (
    id            bigserial PRIMARY KEY,
    org_id        bigint NOT NULL REFERENCES organization (id),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX user_account_email_lower_key ON user_account (lower(email));
CREATE INDEX user_account_org_id_idx ON user_account (org_id);

CREATE TABLE user_role (
    user_id   bigint NOT NULL REFERENCES user_account (id) ON DELETE CASCADE,
    role_name text NOT NULL CHECK (role_name <> ''),
    PRIMARY KEY (user_id, role_name)
);
