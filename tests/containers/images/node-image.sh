#!/usr/bin/env bash
# The local stand-in for node:20-bookworm-slim (the Dockerfile's console stage), built
# without a registry: the local Python base ($BASE_IMAGE, Debian bookworm, from
# base-image.sh) plus this machine's own Node 20 and npm (/usr/bin/node and
# /usr/lib/node_modules/npm, Debian bookworm's libraries), imported into podman as $NODE_IMAGE.
#
#   tests/containers/images/node-image.sh
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-localhost/bookworm-python:3.11}"
NODE_IMAGE="${NODE_IMAGE:-localhost/bookworm-node:20}"
NODE_BIN="$(command -v node || true)"
NPM_DIR="${NPM_DIR:-/usr/lib/node_modules/npm}"

if podman image exists "$NODE_IMAGE"; then
    echo "node image: $NODE_IMAGE (cached in podman)"
    exit 0
fi
if [ ! -x "$NODE_BIN" ] || [ ! -d "$NPM_DIR" ]; then
    echo "node image: needs node and npm" >&2
    exit 1
fi
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$(readlink -f "$NODE_BIN")" "$context/node"
cp -r "$NPM_DIR" "$context/npm"
cat >"$context/Containerfile" <<CONTAINERFILE
FROM $BASE_IMAGE
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
# Node reads its own CA list, not the system store the base trusts (a TLS-inspecting proxy).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
    && node --version && npm --version
CONTAINERFILE
echo "node image: $BASE_IMAGE + $("$NODE_BIN" --version) as $NODE_IMAGE"
podman build --format docker -q -t "$NODE_IMAGE" "$context" >/dev/null
podman image inspect --format 'node image: {{.Size}} bytes' "$NODE_IMAGE"
