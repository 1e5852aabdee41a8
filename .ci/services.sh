#!/usr/bin/env bash
# Make sure Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer; start them if not.
# Only starts what it checked was missing; never stops anything.
set -euo pipefail

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

redis_answers() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
  else
    exec 3<>/dev/tcp/127.0.0.1/6379 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || return 1
    [[ "$reply" == +PONG* ]]
  fi
}

wait_for() {  # wait_for <name> <check-function>
  for _ in $(seq 1 30); do
    if "$2"; then echo "$1: answering"; return 0; fi
    sleep 1
  done
  echo "$1: still not answering after 30 s" >&2
  return 1
}

if pg_answers; then
  echo "postgres: answering"
else
  echo "postgres: not answering; starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  else
    echo "postgres: no pg_ctlcluster here; install PostgreSQL or point CHASSIS_TEST_POSTGRES_URL at one" >&2
    exit 1
  fi
  wait_for postgres pg_answers
fi

if redis_answers; then
  echo "redis: answering"
else
  echo "redis: not answering; starting it"
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  else
    echo "redis: no redis-server here; install Redis (apt-get install redis-server)" >&2
    exit 1
  fi
  wait_for redis redis_answers
fi
