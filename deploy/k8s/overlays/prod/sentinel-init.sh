#!/bin/sh
# Writes this sentinel's configuration (sentinels rewrite it, so it lives in /data): it
# monitors the master a majority of the sentinels know (find-master.sh), else pod 0 of
# tlscache-redis.
set -eu
CONFIG_DIR="${CONFIG_DIR:-/config}"
SELF_HOST="${SELF_HOST:-${HOSTNAME}.tlscache-sentinel}"
SENTINEL_PORT="${SENTINEL_PORT:-26379}"
. "${CONFIG_DIR}/find-master.sh"

master=$(current_master)
config="${DATA_DIR}/sentinel.conf"
umask 077  # it holds the password
{
  cat "${CONFIG_DIR}/sentinel.conf"
  echo "port ${SENTINEL_PORT}"
  echo "dir ${DATA_DIR}"
  echo "sentinel announce-ip ${SELF_HOST}"
  echo "sentinel announce-port ${SENTINEL_PORT}"
  [ -z "${REDISCLI_AUTH:-}" ] || echo "requirepass ${REDISCLI_AUTH}"
  echo "sentinel monitor tlscache ${master} 2"
  [ -z "${REDISCLI_AUTH:-}" ] || echo "sentinel auth-pass tlscache ${REDISCLI_AUTH}"
  cat "${CONFIG_DIR}/sentinel-master.conf"
} > "${config}.new"
mv "${config}.new" "${config}"
echo "monitoring ${master}"
