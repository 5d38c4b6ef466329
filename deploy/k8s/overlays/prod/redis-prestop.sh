#!/bin/sh
# preStop of a Redis pod: a master first hands its role to a replica (SENTINEL FAILOVER) and
# waits until most sentinels name the new master, so that a planned restart (a rollout, a
# node drain) does not leave the farm without a master for down-after-milliseconds and a
# failover. Then it stops: its clients, cut off, ask the sentinels again. A replica stops at
# once. Gives up after 20 s (the pod's grace period is 30 s).
set -u
CONFIG_DIR="${CONFIG_DIR:-/config}"
SELF_HOST="${SELF_HOST:-${HOSTNAME}.tlscache-redis}"
REDIS_PORT="${REDIS_PORT:-6379}"
. "${CONFIG_DIR}/find-master.sh"

role() {
  redis-cli -p "${REDIS_PORT}" --raw info replication 2>/dev/null | tr -d '\r' | grep '^role:'
}

[ "$(role)" = "role:master" ] || exit 0
deadline=$(( $(date +%s) + 20 ))
asked=""
while [ "$(date +%s)" -lt "${deadline}" ]; do
  if [ -z "${asked}" ]; then
    for sentinel in ${SENTINELS}; do
      # -NOGOODSLAVE until a sentinel has seen a replica in sync: asked again below.
      if timeout 3 redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
          sentinel failover tlscache 2>/dev/null | grep -q '^OK'; then
        asked="${sentinel}"
        echo "failover asked of ${sentinel}"
        break
      fi
    done
  fi
  if [ -n "${asked}" ]; then
    master=$(find_master 2>/dev/null) || master=""
    if [ -n "${master}" ] && [ "${master}" != "${SELF_HOST} ${REDIS_PORT}" ]; then
      echo "the master is now ${master}: stopping"
      exit 0
    fi
  fi
  sleep 0.5
done
echo "still the master after 20 s: stopping anyway" >&2
