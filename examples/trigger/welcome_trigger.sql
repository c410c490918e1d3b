-- A job for every new user, pushed by the database itself.
--
-- The trigger runs inside the INSERT's transaction, so the job exists if
-- and only if that INSERT commits: a rolled-back signup leaves no job, and
-- no code path that inserts users can forget to push.
--
-- Privileges. pgtq grants EXECUTE on pgtq.push to pgtq_producer only
-- (nothing to PUBLIC). This function is SECURITY INVOKER (the default): it
-- pushes with the rights of the role that inserts, which must be a member
-- of pgtq_producer (GRANT pgtq_producer TO app_web). To let roles that may
-- insert users enqueue without holding pgtq_producer themselves, make it
-- SECURITY DEFINER, owned by a role that holds pgtq_producer and nothing
-- more (see the end of this file). Either way pgtq.jobs.pushed_by names
-- the login that inserted (session_user), who may wait for the outcome.

CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION enqueue_welcome_email()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- A job key makes it once per user, even if the row is inserted again
    -- after a delete while its first job still waits.
    PERFORM pgtq.push('emails', 'send_welcome',
                      args => jsonb_build_array(NEW.id),
                      kwargs => jsonb_build_object('email', NEW.email),
                      job_key => 'welcome:' || NEW.id);
    RETURN NULL;  -- an AFTER trigger's result is ignored
END
$$;

CREATE TRIGGER users_enqueue_welcome
AFTER INSERT ON users
FOR EACH ROW EXECUTE FUNCTION enqueue_welcome_email();

-- The SECURITY DEFINER variant, for inserting roles without pgtq_producer
-- (run as a role allowed to create roles):
--
--   CREATE ROLE welcome_pusher NOLOGIN IN ROLE pgtq_producer;
--   ALTER FUNCTION enqueue_welcome_email() OWNER TO welcome_pusher;
--   ALTER FUNCTION enqueue_welcome_email() SECURITY DEFINER;
--   REVOKE EXECUTE ON FUNCTION enqueue_welcome_email() FROM PUBLIC;
--
-- Its search_path is pinned above, so an inserting role cannot hijack the
-- names it uses; it can push nothing but this one job per inserted row.
