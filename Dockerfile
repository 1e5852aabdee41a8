# One image recipe for every service (docs/adr/0008-container-image.md):
#
#   docker build --build-arg SERVICE=users -t chassis/users .
#
# SERVICE is users, orders, gateway or worker. Every stage starts from PYTHON_BASE, which
# scripts/refresh-base-digests.sh pins by digest (together with docker/base-image.lock).
# Needs BuildKit (the default builder of current Docker): cache mounts and COPY --chmod.

ARG PYTHON_BASE=python:3.11-slim-bookworm
# The gateway's web console is built with Node (console/, Vite); only its static files ship.
ARG NODE_BASE=node:20-bookworm-slim
ARG SERVICE

# --- console: the web console's static files (console/dist), for the gateway image --------
# Static files are the same on every platform: built once, natively, for a multi-platform build.
FROM --platform=$BUILDPLATFORM ${NODE_BASE} AS console
WORKDIR /console
COPY console/package.json console/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY console/ ./
RUN npm run build

# --- builder: the service's locked dependencies in /app/.venv ------------------------------
FROM ${PYTHON_BASE} AS builder
ARG SERVICE
ARG UV_VERSION=0.13.9
RUN case "${SERVICE}" in \
        users|orders|gateway|worker) ;; \
        *) echo "build with --build-arg SERVICE=users|orders|gateway|worker (got '${SERVICE}')" >&2; \
           exit 1 ;; \
    esac
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /src

# The lock and every workspace member's pyproject.toml (uv resolves the whole workspace):
# this layer and the dependency install below change only when dependencies do.
COPY pyproject.toml uv.lock ./
COPY libs/chassis/pyproject.toml libs/chassis/
COPY libs/contracts/pyproject.toml libs/contracts/
COPY libs/devkit/pyproject.toml libs/devkit/
COPY services/users/pyproject.toml services/users/
COPY services/orders/pyproject.toml services/orders/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/worker/pyproject.toml services/worker/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package "${SERVICE}" --no-install-workspace

# The sources (tests and local state are kept out by .dockerignore), installed non-editable:
# the final image needs /app/.venv only, plus the migrations of the services that have them.
COPY libs/ libs/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package "${SERVICE}" --no-editable \
    && if [ -f "services/${SERVICE}/alembic.ini" ]; then \
           mkdir -p "/app/services/${SERVICE}" \
           && cp -a "services/${SERVICE}/alembic.ini" "services/${SERVICE}/migrations" \
               "/app/services/${SERVICE}/"; \
       fi

# --- runtime: what every service image shares ----------------------------------------------
FROM ${PYTHON_BASE} AS runtime
ARG SERVICE
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
COPY --from=builder --chown=10001:10001 /app /app
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/docker-entrypoint
# Writes go to /tmp only (mount a tmpfs there with a read-only root filesystem); the data
# directory and the Prometheus multiprocess directory are created there at start.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    SERVICE=${SERVICE} \
    HOST=0.0.0.0 \
    WEB_CONCURRENCY=1 \
    GRACEFUL_TIMEOUT=20 \
    KEEP_ALIVE=5 \
    MAX_REQUESTS=0 \
    MAX_REQUESTS_JITTER=0
WORKDIR /app
USER 10001:10001
# tini is PID 1: it forwards SIGTERM to the server and reaps zombies.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/usr/local/bin/docker-entrypoint"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/health/live', timeout=2)"]

# --- one stage per service: only the port differs ------------------------------------------
FROM runtime AS users
ENV PORT=8001
EXPOSE 8001

FROM runtime AS orders
ENV PORT=8002
EXPOSE 8002

FROM runtime AS gateway
# Served at /console (GATEWAY_CONSOLE__DIRECTORY, default console/dist under WORKDIR /app).
COPY --from=console --chown=10001:10001 /console/dist /app/console/dist
ENV PORT=8000
EXPOSE 8000

FROM runtime AS worker
ENV PORT=8003
EXPOSE 8003

# The image: the stage named by SERVICE.
FROM ${SERVICE}
