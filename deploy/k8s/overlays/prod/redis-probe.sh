#!/bin/sh
# The probes of Redis and Sentinel pods: redis-probe.sh KIND CHECK, exiting 0 when it holds.
#   redis ready      the data is loaded, and a replica's link to its master is up with no full
#                    resync running (a replica still copying the data set is not ready: a
#                    rollout waits for it, and a master's preStop never hands over to it);
#   sentinel ready   it answers and names a master for tlscache;
#   sentinel alive   it answers PING (a sentinel that stopped answering is restarted).
# The password is read from the Secret's file at each probe, so a rotated password is used.
set -u
CONFIG_DIR="${CONFIG_DIR:-/config}"
REDIS_PORT="${REDIS_PORT:-6379}"
SENTINEL_PORT="${SENTINEL_PORT:-26379}"
. "${CONFIG_DIR}/find-master.sh"

case "$1 $2" in
  "redis ready")
    info=$(timeout 3 redis-cli -p "${REDIS_PORT}" --raw info 2>&1 | tr -d '\r')
    field() { printf '%s\n' "${info}" | sed -n "s/^$1://p"; }
    if [ "$(field loading)" != 0 ]; then
      echo "not ready: loading (${info%%
*})"
      exit 1
    fi
    [ "$(field role)" != master ] || exit 0
    if [ "$(field master_link_status)" != up ] || [ "$(field master_sync_in_progress)" != 0 ]; then
      echo "not ready: replica of $(field master_host):$(field master_port), link" \
        "$(field master_link_status), sync in progress $(field master_sync_in_progress)"
      exit 1
    fi
    ;;
  "sentinel ready")
    answer=$(timeout 3 redis-cli -p "${SENTINEL_PORT}" --raw \
      sentinel get-master-addr-by-name tlscache 2>&1 | tr '\n' ' ')
    case "${answer}" in
      "" | *ERR* | *NOAUTH* | *WRONGPASS* | *NOPERM* | *"Could not connect"*)
        echo "not ready: ${answer}"
        exit 1
        ;;
    esac
    ;;
  "sentinel alive")
    answer=$(timeout 3 redis-cli -p "${SENTINEL_PORT}" --raw ping 2>&1)
    [ "${answer}" = PONG ] || { echo "not alive: ${answer}"; exit 1; }
    ;;
  *)
    echo "usage: redis-probe.sh redis ready | sentinel ready | sentinel alive" >&2
    exit 2
    ;;
esac
