#!/usr/bin/env bash
# Write the secret files docker-compose.yml mounts at /run/secrets (make secrets).
#
#   bash scripts/compose-secrets.sh [DIR]     # DIR defaults to $CHASSIS_SECRETS_DIR or ./secrets
#
# Each missing file gets 32 random bytes in hex (letters and digits only: the values go
# into database roles and a JSON document). Existing files are never overwritten: the
# Postgres roles are created from them on the volume's first start only. The signing key
# file is left empty (staging generates keys and keeps them in the users database);
# put a PEM private key there for production.
#
# The directory is 0700 (only its owner reaches the files on the host); the files are 0644
# because the containers' users (uid 10001, postgres) read the bind-mounted files themselves.
set -euo pipefail

dir="${1:-${CHASSIS_SECRETS_DIR:-./secrets}}"
mkdir -p "$dir"
chmod 0700 "$dir"

random_secret() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  else
    python3 -c 'import secrets; print(secrets.token_hex(32))'
  fi
}

for name in postgres_password users_db_password orders_db_password worker_client_secret \
  grafana_admin_password users_signing_private_key; do
  path="$dir/$name"
  if [ -e "$path" ]; then
    echo "kept    $path"
    continue
  fi
  if [ "$name" = users_signing_private_key ]; then
    : >"$path"
  else
    random_secret >"$path"
  fi
  chmod 0644 "$path"
  echo "written $path"
done
