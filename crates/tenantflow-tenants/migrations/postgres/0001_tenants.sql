CREATE TABLE tenants (
    tenant_id   TEXT PRIMARY KEY NOT NULL,
    industry    TEXT NOT NULL,
    revenu      BIGINT NOT NULL,
    employees   BIGINT NOT NULL,
    job30       BIGINT NOT NULL,
    job90       BIGINT NOT NULL,
    monthly_fee DOUBLE PRECISION NOT NULL,
    total_fee   DOUBLE PRECISION NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
