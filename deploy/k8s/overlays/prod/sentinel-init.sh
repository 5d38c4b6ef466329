#!/bin/sh
# Writes this sentinel's configuration. Sentinels keep their state (the master, its replicas,
# the other sentinels, the epochs) in the file they rewrite, on the pod's own volume: a
# sentinel that restarts, even with all the others (a full restart), comes back knowing the
# master it knew, and the failovers' epochs go on. Only the settings this deploy owns (ports,
# names, passwords, timeouts) are written again from the ConfigMap and the Secret.
# A sentinel with no state (a new or lost volume) monitors, in order:
#  1. the master a majority of the sentinels names;
#  2. with no majority answering, the Redis pod that reports role:master with the highest
#     replication offset;
#  3. when every Redis pod answers and none is a master but some hold data (the master's
#     volume was lost), the one with the highest offset, made the master (REPLICAOF NO ONE);
# and otherwise asks again every 2 s for up to INIT_TIMEOUT (300 s), then fails and restarts.
# It never monitors a pod for being pod 0: a sentinel that monitors a replica can only mark it
# down, and finds nothing to promote.
set -eu
CONFIG_DIR="${CONFIG_DIR:-/config}"
SELF_HOST="${SELF_HOST:-${HOSTNAME}.tlscache-sentinel}"
SENTINEL_PORT="${SENTINEL_PORT:-26379}"
. "${CONFIG_DIR}/find-master.sh"

config="${DATA_DIR}/sentinel.conf"
state=""
if [ -f "${config}" ] && grep -q '^sentinel monitor tlscache ' "${config}"; then
  # What the sentinel wrote, without the lines written below.
  state=$(grep -v -e '^port ' -e '^dir ' -e '^requirepass ' -e '^user ' -e '^masterauth ' \
    -e '^sentinel auth-' -e '^sentinel sentinel-' -e '^sentinel announce-' \
    -e '^sentinel resolve-hostnames' -e '^sentinel down-after-milliseconds ' \
    -e '^sentinel failover-timeout ' -e '^sentinel parallel-syncs ' -e '^#' "${config}" || true)
fi

decide() {
  check_names || return 1
  master=$(find_master) || return 1
  if [ -n "${master}" ]; then
    why="named by a majority of the sentinels"
    return 0
  fi
  pods=$(survey none)
  master=$(master_among "${pods}")
  if [ -n "${master}" ]; then
    why="the Redis pod reporting role:master with the highest offset"
    return 0
  fi
  if ! printf '%s\n' "${pods}" | grep -q ' none$' &&
      printf '%s\n' "${pods}" | awk '$5 != 0 {found = 1} END {exit !found}'; then
    # Every Redis pod answers, none is a master, some hold data (the master's volume was
    # lost): no one takes writes, so promoting the one with the highest offset loses nothing
    # more.
    master=$(printf '%s\n' "${pods}" | sort -k4,4nr -k5,5nr | head -n 1 | awk '{print $1, $2}')
    if timeout 3 redis-cli -h "${master% *}" -p "${master#* }" replicaof no one 2>&1 |
        grep -q '^OK'; then
      why="no master anywhere: the Redis pod with the highest offset, made the master"
      return 0
    fi
    echo "could not make ${master} the master" >&2
    return 1
  fi
  echo "no sentinel majority answers and no Redis pod is a master: waiting" >&2
  return 1
}

if [ -n "${state}" ]; then
  why="its own state"
  master=$(printf '%s\n' "${state}" | sed -n 's/^sentinel monitor tlscache \([^ ]*\) \([^ ]*\) .*/\1 \2/p')
else
  retry "${INIT_TIMEOUT:-300}" decide
fi

umask 077  # it holds the password
{
  cat "${CONFIG_DIR}/sentinel.conf"
  echo "port ${SENTINEL_PORT}"
  echo "dir ${DATA_DIR}"
  echo "sentinel announce-ip ${SELF_HOST}"
  echo "sentinel announce-port ${SENTINEL_PORT}"
  if [ -n "${state}" ]; then
    printf '%s\n' "${state}"
  else
    echo "sentinel monitor tlscache ${master} 2"
  fi
  sentinel_acl
  cat "${CONFIG_DIR}/sentinel-master.conf"
} > "${config}.new"
mv "${config}.new" "${config}"
echo "monitoring ${master} (${why})"
