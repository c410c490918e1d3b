-- The application table the psql and Node.js examples share.
CREATE TABLE IF NOT EXISTS users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    welcomed_at timestamptz
);
