-- One database and one login role per service, created on the first start of an
-- empty data volume (docker-entrypoint-initdb.d; runs as the superuser).
-- Passwords come from files named by USERS_DB_PASSWORD_FILE / ORDERS_DB_PASSWORD_FILE
-- (compose's /run/secrets) or else from USERS_DB_PASSWORD / ORDERS_DB_PASSWORD (Tilt's
-- secretKeyRef env), read by psql's backquote (trailing newline dropped), so none is written
-- here. Changing them later needs ALTER ROLE (or a new volume).
\set ON_ERROR_STOP on

\set users_password `if [ -n "${USERS_DB_PASSWORD_FILE:-}" ]; then cat "$USERS_DB_PASSWORD_FILE"; else printf '%s' "${USERS_DB_PASSWORD:-}"; fi`
\set orders_password `if [ -n "${ORDERS_DB_PASSWORD_FILE:-}" ]; then cat "$ORDERS_DB_PASSWORD_FILE"; else printf '%s' "${ORDERS_DB_PASSWORD:-}"; fi`

SELECT :'users_password' <> '' AND :'orders_password' <> '' AS passwords_set \gset
\if :passwords_set
\else
  \echo 'USERS_DB_PASSWORD and ORDERS_DB_PASSWORD must be set'
  SELECT 1/0;
\endif

CREATE ROLE users LOGIN PASSWORD :'users_password';
CREATE ROLE orders LOGIN PASSWORD :'orders_password';

CREATE DATABASE users OWNER users;
CREATE DATABASE orders OWNER orders;

-- Each service reaches its own database only.
REVOKE ALL ON DATABASE users FROM PUBLIC;
REVOKE ALL ON DATABASE orders FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE users TO users;
GRANT CONNECT, TEMPORARY ON DATABASE orders TO orders;
