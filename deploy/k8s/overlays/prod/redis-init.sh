#!/bin/sh
# Writes this Redis pod's configuration before redis-server starts: whom it follows, or that it
# is the master. In order, the first that applies:
#  1. What a majority of the sentinels names (the usual case: a pod restarted in a running
#     deployment; a master restarted before the sentinels noticed keeps its role and its data
#     from the append-only file).
#  2. With no majority answering (every sentinel restarted too, or a new deployment): the Redis
#     pod that reports role:master with the highest replication offset.
#  3. What this pod's own configuration on its volume says it was (Sentinel rewrites it at each
#     failover): the master it followed, or the master it was. A full restart thus comes back
#     with the master it had, whichever pod that is, and never crowns pod 0 because it is 0.
#  4. A new (or lost) volume: it follows the Redis pod that holds the most, if any holds
#     data; pod 0 starts as the master only when every other Redis pod answers and all are
#     empty (a new deployment); other pods start as empty replicas of pod 0 and wait. A pod
#     with a new volume never starts as the master while another may hold data, even when the
#     sentinels name it. Where no pod is the master after all (the master's volume was lost
#     while the sentinels' state was too), sentinel-init.sh promotes the pod with the highest
#     offset.
# Names that do not resolve stop it (a DNS failure is not an empty cluster). It asks again
# every 2 s for up to INIT_TIMEOUT (300 s), then fails, and the pod restarts.
set -eu
CONFIG_DIR="${CONFIG_DIR:-/config}"
SELF_HOST="${SELF_HOST:-${HOSTNAME}.tlscache-redis}"
REDIS_PORT="${REDIS_PORT:-6379}"
. "${CONFIG_DIR}/find-master.sh"

self="${SELF_HOST} ${REDIS_PORT}"
bootstrap="${BOOTSTRAP_MASTER%:*} ${BOOTSTRAP_MASTER##*:}"
config="${DATA_DIR}/redis.conf"
previous=""
if [ -f "${config}" ]; then
  previous=$(sed -n 's/^replicaof  *//p; s/^slaveof  *//p' "${config}" | tr -d '"' | head -n 1)
  [ -n "${previous}" ] || previous="${self}"
fi

# new_volume: where a pod with no configuration of its own (a new or lost volume) starts:
# following the pod that holds the most, if any holds data (it may be a replica that the
# sentinels promote later: sentinel-init.sh); as the master when it is pod 0 and every other
# pod answers and all are empty (a new deployment); otherwise as an empty replica of pod 0.
# Pod 0 waits while some pod does not answer: it may hold data.
new_volume() {
  pods=$1
  fullest=$(printf '%s\n' "${pods}" | awk '$3 != "none" && $5 != 0' | sort -k4,4nr -k5,5nr |
    head -n 1 | awk '{print $1, $2}')
  if [ -n "${fullest}" ]; then
    master="${fullest}"
    why="a new volume: following the Redis pod that holds the most"
  elif [ "${self}" != "${bootstrap}" ]; then
    master="${bootstrap}"
    why="a new volume and no data anywhere yet: an empty replica of the bootstrap pod"
  elif printf '%s\n' "${pods}" | grep -q ' none$'; then
    echo "a new volume, no master running, and not every Redis pod answers: waiting" >&2
    return 1
  else
    master="${self}"
    why="a new deployment: every Redis pod answers and all are empty"
  fi
}

decide() {
  check_names || return 1
  master=$(find_master) || return 1
  if [ -n "${master}" ] && { [ "${master}" != "${self}" ] || [ -n "${previous}" ]; }; then
    why="named by a majority of the sentinels"
    return 0
  fi
  pods=$(survey "${self}")
  if [ -n "${master}" ]; then
    # Named, but with nothing on its volume: becoming the master would have the replicas
    # copy an empty data set. It follows the pod that holds the most instead, and the
    # sentinels, seeing their master report itself a replica, fail over to the best one.
    new_volume "${pods}" || return 1
    why="named by the sentinels, but ${why}"
    return 0
  fi
  master=$(master_among "${pods}")
  if [ -n "${master}" ]; then
    why="no sentinel majority; the Redis pod reporting role:master with the highest offset"
    return 0
  fi
  if [ -n "${previous}" ]; then
    master="${previous}"
    why="no sentinel majority, no master running; as this pod's configuration left it"
    return 0
  fi
  new_volume "${pods}"
}

retry "${INIT_TIMEOUT:-300}" decide

umask 077  # it holds the passwords
{
  cat "${CONFIG_DIR}/redis.conf"
  echo "port ${REDIS_PORT}"
  echo "dir ${DATA_DIR}"
  echo "replica-announce-ip ${SELF_HOST}"
  echo "replica-announce-port ${REDIS_PORT}"
  redis_acl
  [ "${master}" = "${self}" ] || echo "replicaof ${master}"
} > "${config}.new"
mv "${config}.new" "${config}"
echo "master: ${master}$([ "${master}" = "${self}" ] && echo ' (this pod)') (${why})"
