#!/bin/sh
# The official postgres image's start-up, reduced to what docker-compose.yml relies on.
set -eu
# POSTGRES_PASSWORD_FILE as in the official image: the password as a mounted secret file.
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required}"
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
as_postgres() { runuser -u postgres -- "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 --auth-host=scram-sha-256 \
        --auth-local=trust >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # The init scripts run against a server on the Unix socket only, as in the official
    # image, so the TCP healthcheck stays unhealthy until they are done.
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sql) echo "init: $script"; as_postgres env USERS_DB_PASSWORD="${USERS_DB_PASSWORD:-}" \
                ORDERS_DB_PASSWORD="${ORDERS_DB_PASSWORD:-}" \
                USERS_DB_PASSWORD_FILE="${USERS_DB_PASSWORD_FILE:-}" \
                ORDERS_DB_PASSWORD_FILE="${ORDERS_DB_PASSWORD_FILE:-}" psql -v ON_ERROR_STOP=1 -U postgres \
                -d "${POSTGRES_DB:-postgres}" -q -f "$script" ;;
            *.sh)
                echo "init: $script"
                # shellcheck disable=SC1090  # the init scripts are known at run time only
                . "$script"
                ;;
        esac
    done
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec runuser -u postgres -- postgres -D "$PGDATA"
