-- The Flask example's tables (pgtq's schema is installed with `pgtq migrate`).
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    welcomed_at timestamptz
);

CREATE TABLE subscriptions (
    user_id bigint NOT NULL REFERENCES users (id),
    plan    text NOT NULL CONSTRAINT subscriptions_plan_known CHECK (plan IN ('free', 'pro'))
);
