# Sourced by redis-init.sh, sentinel-init.sh and redis-prestop.sh: the sentinels, the
# bootstrap master and the password, each overridable (the tests run pods on one host), and
# the functions below.
SENTINELS="${SENTINELS:-tlscache-sentinel-0.tlscache-sentinel:26379 tlscache-sentinel-1.tlscache-sentinel:26379 tlscache-sentinel-2.tlscache-sentinel:26379}"
BOOTSTRAP_MASTER="${BOOTSTRAP_MASTER:-tlscache-redis-0.tlscache-redis:6379}"
PASSWORD_FILE="${PASSWORD_FILE:-/secrets/redis/password}"
DATA_DIR="${DATA_DIR:-/data}"

# find_master: asks every sentinel in
# $SENTINELS ("HOST:PORT ...") who the master of "tlscache" is and prints the "HOST PORT"
# that more than half of those answering name: with three sentinels, one down or wrong
# cannot make a pod follow the wrong master, or start as a second master. A lone answer is
# taken (the others down, or not started yet in a new deployment). Prints nothing when no
# sentinel answers (a new deployment: the caller starts from $BOOTSTRAP_MASTER). Fails when
# the answers have no majority, so that the pod restarts and asks again rather than guess.
find_master() {
  answers=""
  for sentinel in ${SENTINELS}; do
    answer=$(timeout 3 redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
      sentinel get-master-addr-by-name tlscache 2>/dev/null | tr '\n' ' ' | sed 's/ *$//') \
      || answer=""
    case "${answer}" in
      "" | *ERR* | *NOAUTH* | *WRONGPASS* | *LOADING*) ;;  # no answer
      *) answers="${answers}${answer}
" ;;
    esac
  done
  [ -n "${answers}" ] || return 0
  count=$(printf '%s' "${answers}" | wc -l)
  best=$(printf '%s' "${answers}" | sort | uniq -c | sort -rn | head -n 1)
  if [ $(( 2 * $(echo "${best}" | awk '{print $1}') )) -le "${count}" ]; then
    echo "the sentinels do not agree on a master:" $(printf '%s' "${answers}" | tr '\n' ';') >&2
    return 1
  fi
  echo "${best}" | awk '{print $2, $3}'
}

# current_master: find_master's answer, or $BOOTSTRAP_MASTER ("HOST PORT") when no sentinel
# answers; fails as find_master does.
current_master() {
  master=$(find_master) || return 1
  [ -n "${master}" ] || master="${BOOTSTRAP_MASTER%:*} ${BOOTSTRAP_MASTER##*:}"
  echo "${master}"
}

# The Redis password (a Secret's file), for redis-cli here and for the configs written.
if [ -r "${PASSWORD_FILE}" ]; then
  REDISCLI_AUTH=$(cat "${PASSWORD_FILE}")
  export REDISCLI_AUTH
fi
