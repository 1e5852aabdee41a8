#!/bin/sh
# Container entrypoint for every service image (see Dockerfile and docs/adr/0008-container-image.md).
#
# tini is PID 1 and runs this script; the script prepares the writable directories under
# $TMPDIR (the root filesystem may be read-only), maps the container knobs below onto the
# service's own settings, then `exec`s the server so that tini -> server and SIGTERM drains.
#
#   SERVICE               users | orders | gateway | worker (baked in by the image)
#   PORT                  listen port (image default: users 8001, orders 8002, gateway 8000,
#                         worker 8003 for its health and metrics server)
#   HOST                  bind address, default 0.0.0.0
#   WEB_CONCURRENCY       uvicorn worker processes, default 1 (not used by the worker)
#   GRACEFUL_TIMEOUT      seconds in-flight requests (or jobs) get after SIGTERM, default 20
#   KEEP_ALIVE            idle keep-alive timeout in seconds, default 5; keep it above the
#                         callers' upstream KEEPALIVE_EXPIRY_SECONDS (4 s)
#   MAX_REQUESTS          recycle a uvicorn worker after this many requests, default 0 (never)
#   MAX_REQUESTS_JITTER   up to this many more, drawn per worker process, default 0
#   ENTRYPOINT_DRY_RUN=1  print the environment it set and the command, do not exec it
#
# Any argument other than none replaces the server: `docker run IMAGE alembic -c
# /app/services/users/alembic.ini upgrade head` runs a one-off command with the same set-up.
set -eu

die() {
    echo "entrypoint: $*" >&2
    exit 64
}

# default_env NAME VALUE: export NAME=VALUE unless NAME is already set (even to "").
default_env() {
    eval "_is_set=\${$1+set}"
    if [ -z "$_is_set" ]; then
        export "$1=$2"
    fi
}

# require_int NAME VALUE: VALUE is a non-negative integer.
require_int() {
    case "$2" in
        '' | *[!0-9]*) die "$1 must be a non-negative integer, got '$2'" ;;
    esac
}

SERVICE="${SERVICE:-}"
case "$SERVICE" in
    users) prefix=USERS_ default_port=8001 ;;
    orders) prefix=ORDERS_ default_port=8002 ;;
    gateway) prefix=GATEWAY_ default_port=8000 ;;
    worker) prefix=WORKER_ default_port=8003 ;;
    *) die "SERVICE must be one of users, orders, gateway, worker (got '$SERVICE')" ;;
esac

PORT="${PORT:-$default_port}"
HOST="${HOST:-0.0.0.0}"
WEB_CONCURRENCY="${WEB_CONCURRENCY:-1}"
GRACEFUL_TIMEOUT="${GRACEFUL_TIMEOUT:-20}"
KEEP_ALIVE="${KEEP_ALIVE:-5}"
MAX_REQUESTS="${MAX_REQUESTS:-0}"
MAX_REQUESTS_JITTER="${MAX_REQUESTS_JITTER:-0}"
for knob in PORT WEB_CONCURRENCY GRACEFUL_TIMEOUT KEEP_ALIVE MAX_REQUESTS MAX_REQUESTS_JITTER; do
    eval "require_int $knob \"\$$knob\""
done
[ "$WEB_CONCURRENCY" -ge 1 ] || die "WEB_CONCURRENCY must be at least 1"

# Everything the processes write lives under $TMPDIR (a tmpfs with a read-only root fs).
TMPDIR="${TMPDIR:-/tmp}"
export TMPDIR

# The settings see what the server really does: the users JWKS default URL uses the port,
# the memory rate-limit backend refuses several workers, the worker's job drain uses the
# graceful timeout. Values set explicitly in the environment win.
default_env "${prefix}DATA_DIR" "$TMPDIR/data"
default_env "${prefix}SERVER__PORT" "$PORT"
default_env "${prefix}SERVER__GRACEFUL_TIMEOUT_SECONDS" "$GRACEFUL_TIMEOUT"
if [ "$SERVICE" = worker ]; then
    # The health and metrics server runs inside the arq process, not under uvicorn's CLI.
    default_env WORKER_SERVER__HOST "$HOST"
else
    default_env "${prefix}SERVER__WORKERS" "$WEB_CONCURRENCY"
fi
eval "data_dir=\$${prefix}DATA_DIR"
# shellcheck disable=SC2154  # data_dir is assigned by the eval above
mkdir -p "$data_dir"

# Several uvicorn workers share their Prometheus samples through an empty directory.
if [ "$SERVICE" != worker ] && [ "$WEB_CONCURRENCY" -gt 1 ]; then
    PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$TMPDIR/metrics}"
fi
# Emptied, never removed: under compose it is a tmpfs mount point on a read-only root fs,
# where `rm -rf` of the directory itself fails and ends the container (seen on podman).
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
    export PROMETHEUS_MULTIPROC_DIR
fi

if [ "$#" -eq 0 ]; then
    if [ "$SERVICE" = worker ]; then
        set -- arq worker.main.WorkerSettings
    else
        # --no-proxy-headers: the chassis' trusted-proxy allowlist alone judges X-Forwarded-*.
        # --limit-max-requests only when asked: with one worker, reaching it ends the container.
        set -- uvicorn --factory "$SERVICE.main:create_app" \
            --host "$HOST" --port "$PORT" \
            --workers "$WEB_CONCURRENCY" \
            --timeout-graceful-shutdown "$GRACEFUL_TIMEOUT" \
            --timeout-keep-alive "$KEEP_ALIVE" \
            --no-proxy-headers --no-server-header
        if [ "$MAX_REQUESTS" -gt 0 ]; then
            set -- "$@" --limit-max-requests "$MAX_REQUESTS" \
                --limit-max-requests-jitter "$MAX_REQUESTS_JITTER"
        fi
    fi
fi

if [ "${ENTRYPOINT_DRY_RUN:-0}" = 1 ]; then
    for name in "${prefix}DATA_DIR" "${prefix}SERVER__PORT" \
        "${prefix}SERVER__GRACEFUL_TIMEOUT_SECONDS" "${prefix}SERVER__WORKERS" \
        "${prefix}SERVER__HOST" PROMETHEUS_MULTIPROC_DIR; do
        eval "_is_set=\${$name+set}"
        if [ -n "$_is_set" ]; then
            eval "printf 'env:%s=%s\n' \"\$name\" \"\$$name\""
        fi
    done
    for arg in "$@"; do
        printf 'argv:%s\n' "$arg"
    done
    exit 0
fi

exec "$@"
