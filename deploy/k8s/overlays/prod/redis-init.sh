#!/bin/sh
# Writes this Redis pod's configuration before redis-server starts, as the Bitnami Redis
# chart's Sentinel mode does: the pod asks the sentinels who the master is and replicates it,
# or stays the master if that is itself (a master restarted before the sentinels noticed
# keeps its role, and its data from the append-only file). With no sentinel answering (a new
# deployment) pod 0 is the master.
set -eu
CONFIG_DIR="${CONFIG_DIR:-/config}"
SELF_HOST="${SELF_HOST:-${HOSTNAME}.tlscache-redis}"
REDIS_PORT="${REDIS_PORT:-6379}"
. "${CONFIG_DIR}/find-master.sh"

master=$(current_master)
config="${DATA_DIR}/redis.conf"
umask 077  # it holds the password
{
  cat "${CONFIG_DIR}/redis.conf"
  echo "port ${REDIS_PORT}"
  echo "dir ${DATA_DIR}"
  echo "replica-announce-ip ${SELF_HOST}"
  echo "replica-announce-port ${REDIS_PORT}"
  if [ -n "${REDISCLI_AUTH:-}" ]; then
    echo "requirepass ${REDISCLI_AUTH}"
    echo "masterauth ${REDISCLI_AUTH}"
  fi
  [ "${master}" = "${SELF_HOST} ${REDIS_PORT}" ] || echo "replicaof ${master}"
} > "${config}.new"
mv "${config}.new" "${config}"
echo "master: ${master}$([ "${master}" = "${SELF_HOST} ${REDIS_PORT}" ] && echo ' (this pod)')"
