#!/usr/bin/env bash
# The local stand-in for python:3.11-slim-bookworm, built without a registry (none is
# reachable on the test machines): Debian bookworm minbase by debootstrap, plus Debian's
# python3.11, venv and pip, imported into podman as $BASE_IMAGE. The Dockerfile's pinned
# digest stays the default for everyone else; the smoke passes this one as PYTHON_BASE.
#
#   tests/containers/images/base-image.sh [CACHE_DIR]
#
# Cached twice: podman keeps the image, and CACHE_DIR (default .cache/containers, git-ignored)
# keeps its tarball, so a new podman store imports it again in seconds.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-localhost/bookworm-python:3.11}"
CACHE_DIR="${1:-.cache/containers}"
TARBALL="$CACHE_DIR/bookworm-python-3.11.tar"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$BASE_IMAGE"; then
    echo "base image: $BASE_IMAGE (cached in podman)"
    exit 0
fi
mkdir -p "$CACHE_DIR"
if [ ! -s "$TARBALL" ]; then
    root="$(mktemp -d)"
    trap 'rm -rf "$root"' EXIT
    echo "base image: debootstrap bookworm minbase into $root"
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
    # What python:3.11-slim gives the Dockerfile: python3 and pip on /usr/local/bin, pip
    # allowed to install (Debian marks its Python externally managed), CA certificates.
    chroot "$root" apt-get install -y -qq --no-install-recommends \
        python3.11 python3-venv python3-pip ca-certificates >/dev/null
    rm -f "$root"/usr/lib/python3.11/EXTERNALLY-MANAGED
    # The host's own CAs (a TLS-inspecting egress proxy on the test machines) are trusted
    # inside too, or the image builds could not reach PyPI and Debian from here.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python3"
    ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$TARBALL.partial" .
    mv "$TARBALL.partial" "$TARBALL"
fi
echo "base image: importing $TARBALL as $BASE_IMAGE"
# SSL_CERT_FILE: uv (in the Dockerfile's builder stage) reads its CAs from there, not the store.
podman import --change 'CMD ["/bin/bash"]' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    - "$BASE_IMAGE" <"$TARBALL" >/dev/null
podman image inspect --format 'base image: {{.Size}} bytes' "$BASE_IMAGE"
