-- Creates the two roles Tasker relies on and the privileges between them. It runs before every
-- migration as the connecting user (a superuser, or a role with CREATEROLE that is a member of
-- tasker_owner), and is idempotent. Roles are cluster-wide; grants are per database.

DO $$
BEGIN
    CREATE ROLE tasker_owner NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- exists already, possibly created by a concurrent migrator
END $$;

-- The application role: it can log in, but can never bypass row-level security, and owns nothing.
DO $$
BEGIN
    CREATE ROLE tasker_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;
ALTER ROLE tasker_app NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;

GRANT USAGE, CREATE ON SCHEMA public TO tasker_owner;
GRANT USAGE ON SCHEMA public TO tasker_app;

-- Tables the owner creates are readable and writable by the app; RLS decides which rows.
ALTER DEFAULT PRIVILEGES FOR ROLE tasker_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tasker_app;
ALTER DEFAULT PRIVILEGES FOR ROLE tasker_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO tasker_app;
