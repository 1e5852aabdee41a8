#!/bin/sh
# Pin the base images by digest: resolve each tag's current digest and rewrite
# docker/base-image.lock and the matching `ARG <NAME>=` defaults together: PYTHON_BASE (the
# python: tag) in ./Dockerfile and in loadtests/Dockerfile when it is there (its test requires
# the same base as the services'), NODE_BASE (the node: tag, the console's build stage) in
# ./Dockerfile.
#
#   scripts/refresh-base-digests.sh [PYTHON_TAG]     (tags default to the ones in the lock file)
#
# Needs registry access and one of: docker buildx, crane, skopeo. The digest is the one of
# the multi-platform index, so the pin works on amd64 and arm64 alike.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/docker/base-image.lock"
dockerfiles="$root/Dockerfile"
[ -f "$root/loadtests/Dockerfile" ] && dockerfiles="$dockerfiles $root/loadtests/Dockerfile"

resolve() {
    if command -v crane >/dev/null 2>&1; then
        crane digest "$1"
    elif command -v skopeo >/dev/null 2>&1; then
        echo "sha256:$(skopeo inspect --raw "docker://$1" | sha256sum | cut -d ' ' -f 1)"
    elif command -v docker >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
        docker buildx imagetools inspect "$1" --format '{{.Manifest.Digest}}'
    else
        echo "refresh-base-digests: needs crane, skopeo or docker buildx" >&2
        return 1
    fi
}

arg_for() {
    case "$1" in
        python:*) echo PYTHON_BASE ;;
        node:*) echo NODE_BASE ;;
        *) echo "refresh-base-digests: no Dockerfile ARG takes '$1'" >&2; return 1 ;;
    esac
}

tmp=$(mktemp)
pins=$(mktemp)
trap 'rm -f "$tmp" "$pins"' EXIT
# Words, not lines, on purpose: an image reference has no space, and a `while read` fed by a
# pipe would run in a subshell, where `exit 1` would not stop this script.
# shellcheck disable=SC2013
for current in $(grep -v '^[[:space:]]*#' "$lock" | grep -v '^[[:space:]]*$'); do
    tag="${current%%@*}"
    arg=$(arg_for "$tag")
    if [ "$arg" = PYTHON_BASE ] && [ -n "${1:-}" ]; then
        tag="$1"
    fi
    digest=$(resolve "$tag")
    if ! printf '%s\n' "$digest" | grep -Eq '^sha256:[0-9a-f]{64}$'; then
        echo "refresh-base-digests: '$tag' did not resolve to a digest (got '$digest')" >&2
        exit 1
    fi
    printf '%s %s\n' "$arg" "$tag@$digest" >> "$pins"
done
[ -s "$pins" ] || { echo "refresh-base-digests: no image tag in $lock" >&2; exit 1; }

# Every file is checked before any is written: a missing ARG line leaves all untouched.
while read -r arg pinned; do
    for dockerfile in $dockerfiles; do
        [ "$arg" = NODE_BASE ] && [ "$dockerfile" != "$root/Dockerfile" ] && continue
        grep -q "^ARG $arg=" "$dockerfile" || {
            echo "refresh-base-digests: no 'ARG $arg=' line in $dockerfile" >&2
            exit 1
        }
    done
done < "$pins"
{
    grep '^#' "$lock" | grep -v -e '^# Not pinned yet' -e '^# access). Run'
    cut -d ' ' -f 2 "$pins"
} > "$tmp"
cat "$tmp" > "$lock"
while read -r arg pinned; do
    for dockerfile in $dockerfiles; do
        grep -q "^ARG $arg=" "$dockerfile" || continue
        sed "s|^ARG $arg=.*\$|ARG $arg=$pinned|" "$dockerfile" > "$tmp"
        cat "$tmp" > "$dockerfile"
        echo "pinned $pinned in ${dockerfile#"$root"/}"
    done
done < "$pins"
