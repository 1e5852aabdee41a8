#!/bin/sh
# Pin the base image by digest: resolve the tag's current digest and rewrite
# docker/base-image.lock and the `ARG PYTHON_BASE=` default of ./Dockerfile together, and of
# loadtests/Dockerfile when it is there (its test requires the same base as the services').
#
#   scripts/refresh-base-digests.sh [TAG]     (TAG defaults to the one in the lock file)
#
# Needs registry access and one of: docker buildx, crane, skopeo. The digest is the one of
# the multi-platform index, so the pin works on amd64 and arm64 alike.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/docker/base-image.lock"
dockerfiles="$root/Dockerfile"
[ -f "$root/loadtests/Dockerfile" ] && dockerfiles="$dockerfiles $root/loadtests/Dockerfile"

current=$(grep -v '^[[:space:]]*#' "$lock" | grep -v '^[[:space:]]*$' | head -n 1)
tag="${1:-${current%%@*}}"
[ -n "$tag" ] || { echo "refresh-base-digests: no image tag in $lock" >&2; exit 1; }

if command -v crane >/dev/null 2>&1; then
    digest=$(crane digest "$tag")
elif command -v skopeo >/dev/null 2>&1; then
    digest="sha256:$(skopeo inspect --raw "docker://$tag" | sha256sum | cut -d ' ' -f 1)"
elif command -v docker >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
    digest=$(docker buildx imagetools inspect "$tag" --format '{{.Manifest.Digest}}')
else
    echo "refresh-base-digests: needs crane, skopeo or docker buildx" >&2
    exit 1
fi

if ! printf '%s\n' "$digest" | grep -Eq '^sha256:[0-9a-f]{64}$'; then
    echo "refresh-base-digests: '$tag' did not resolve to a digest (got '$digest')" >&2
    exit 1
fi

pinned="$tag@$digest"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
    grep '^#' "$lock" | grep -v -e '^# Not pinned yet' -e '^# access). Run'
    printf '%s\n' "$pinned"
} > "$tmp"
# Every file is checked before any is written: a missing ARG line leaves all untouched.
for dockerfile in $dockerfiles; do
    grep -q '^ARG PYTHON_BASE=' "$dockerfile" || {
        echo "refresh-base-digests: no 'ARG PYTHON_BASE=' line in $dockerfile" >&2
        exit 1
    }
done
cat "$tmp" > "$lock"
for dockerfile in $dockerfiles; do
    sed "s|^ARG PYTHON_BASE=.*\$|ARG PYTHON_BASE=$pinned|" "$dockerfile" > "$tmp"
    cat "$tmp" > "$dockerfile"
    echo "pinned $pinned in ${dockerfile#"$root"/}"
done
