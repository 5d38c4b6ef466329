# Sourced by redis-init.sh, sentinel-init.sh, redis-prestop.sh, redis-ready.sh and
# redis-auth-sync.sh: the pods' names, the bootstrap master and the secrets, each overridable
# (the tests run pods on one host), and the functions below.
SENTINELS="${SENTINELS:-tlscache-sentinel-0.tlscache-sentinel:26379 tlscache-sentinel-1.tlscache-sentinel:26379 tlscache-sentinel-2.tlscache-sentinel:26379}"
REDIS_PODS="${REDIS_PODS:-tlscache-redis-0.tlscache-redis:6379 tlscache-redis-1.tlscache-redis:6379 tlscache-redis-2.tlscache-redis:6379}"
BOOTSTRAP_MASTER="${BOOTSTRAP_MASTER:-tlscache-redis-0.tlscache-redis:6379}"
SECRETS_DIR="${SECRETS_DIR:-/secrets/redis}"
PASSWORD_FILE="${PASSWORD_FILE:-${SECRETS_DIR}/password}"
DATA_DIR="${DATA_DIR:-/data}"

# count WORDS...: how many words.
count() { echo $#; }

# majority: how many of the sentinels make a majority (2 of 3).
majority() { echo $(( $(count ${SENTINELS}) / 2 + 1 )); }

# check_names: fails, saying so, when a pod's name does not resolve. With the headless
# Services' publishNotReadyAddresses every pod's name resolves as soon as it has an address, so
# a name that does not is a DNS failure, not "nobody is there": the caller retries rather than
# decide on a silence that means nothing.
check_names() {
  for endpoint in ${SENTINELS} ${REDIS_PODS}; do
    host="${endpoint%:*}"
    if ! getent hosts "${host}" >/dev/null 2>&1; then
      echo "cannot resolve ${host}: not deciding on a DNS failure" >&2
      return 1
    fi
  done
}

# find_master: asks every sentinel who the master of "tlscache" is and prints the "HOST PORT"
# that a majority of all the sentinels (not merely of those answering) names: one sentinel
# down, wrong or cut off cannot make a pod follow the wrong master, or start as a second
# master. Prints nothing when fewer than a majority answer (a full restart, a new deployment:
# the caller asks the Redis pods). Fails when a majority answers but does not agree (a
# failover in progress), so that the caller asks again rather than guess.
find_master() {
  answers=""
  for sentinel in ${SENTINELS}; do
    answer=$(timeout 3 redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
      sentinel get-master-addr-by-name tlscache 2>/dev/null | tr '\n' ' ' | sed 's/ *$//') \
      || answer=""
    case "${answer}" in
      "" | *ERR* | *NOAUTH* | *WRONGPASS* | *LOADING* | *NOPERM*) ;;  # no answer
      *) answers="${answers}${answer}
" ;;
    esac
  done
  [ -n "${answers}" ] || return 0
  best=$(printf '%s' "${answers}" | sort | uniq -c | sort -rn | head -n 1)
  if [ "$(echo "${best}" | awk '{print $1}')" -ge "$(majority)" ]; then
    echo "${best}" | awk '{print $2, $3}'
    return 0
  fi
  if [ "$(printf '%s' "${answers}" | wc -l)" -ge "$(majority)" ]; then
    echo "the sentinels do not agree on a master:" $(printf '%s' "${answers}" | tr '\n' ';') >&2
    return 1
  fi
}

# redis_info HOST PORT: "ROLE OFFSET KEYS" of the Redis pod at HOST:PORT ("master 1234 17",
# "slave 1200 17"), or nothing when it does not answer or is still loading its data.
redis_info() {
  info=$(timeout 3 redis-cli -h "$1" -p "$2" --raw info replication 2>/dev/null | tr -d '\r') \
    || return 0
  role=$(printf '%s\n' "${info}" | sed -n 's/^role://p')
  [ -n "${role}" ] || return 0
  if [ "${role}" = master ]; then
    offset=$(printf '%s\n' "${info}" | sed -n 's/^master_repl_offset://p')
  else
    offset=$(printf '%s\n' "${info}" | sed -n 's/^slave_repl_offset://p')
  fi
  keys=$(timeout 3 redis-cli -h "$1" -p "$2" --raw dbsize 2>/dev/null | tr -d '\r') || return 0
  case "${keys}" in
    '' | *[!0-9]*) return 0 ;;  # LOADING, an error: not an answer yet
  esac
  echo "${role} ${offset:-0} ${keys}"
}

# survey SELF: one line per Redis pod but SELF ("HOST PORT"): "HOST PORT ROLE OFFSET KEYS", or
# "HOST PORT none" for a pod that does not answer.
survey() {
  for pod in ${REDIS_PODS}; do
    host="${pod%:*}"
    port="${pod##*:}"
    [ "${host} ${port}" != "$1" ] || continue
    info=$(redis_info "${host}" "${port}")
    echo "${host} ${port} ${info:-none}"
  done
}

# master_among SURVEY: the "HOST PORT" of the pod that reports role:master with the highest
# replication offset (a master restarted alone, or one the sentinels forgot), if any.
master_among() {
  printf '%s\n' "$1" | awk '$3 == "master"' | sort -k4,4nr | head -n 1 | awk '{print $1, $2}'
}

# The Redis passwords (a Secret's files), for redis-cli here and for the configs written.
if [ -r "${PASSWORD_FILE}" ]; then
  REDISCLI_AUTH=$(cat "${PASSWORD_FILE}")
  export REDISCLI_AUTH
fi

# retry SECONDS COMMAND...: runs COMMAND until it succeeds, every 2 s, for at most SECONDS;
# fails with COMMAND's last failure.
retry() {
  deadline=$(( $(date +%s) + $1 ))
  shift
  while ! "$@"; do
    if [ "$(date +%s)" -ge "${deadline}" ]; then
      echo "gave up after waiting; the pod restarts and asks again" >&2
      return 1
    fi
    sleep "${RETRY_INTERVAL:-2}"
  done
}

# The service's ACL user: the commands and the keys and channels tlscache-server uses (its
# key prefix is "tlscache:"), nothing else; on the sentinels, asking for the master and
# following failovers. The default user (the password in "password") keeps every command,
# for replication, the sentinels, the probes and operators; the servers never see it.
SERVICE_COMMANDS="-@all +ping +select +role +info +script|load +eval +evalsha +wait +get +set +exists +strlen +pttl +hget +hset +hsetnx +hdel +hexists +hgetall +hmget +hlen +hincrby +zadd +zscore +zremrangebyscore +time +publish +subscribe +unsubscribe +spublish +ssubscribe +sunsubscribe"
SENTINEL_SERVICE_COMMANDS="-@all +ping +sentinel|get-master-addr-by-name +subscribe +unsubscribe"

# secret NAME: the file NAME of the Secret, without a trailing newline; nothing when absent.
secret() {
  [ ! -r "${SECRETS_DIR}/$1" ] || tr -d '\r\n' < "${SECRETS_DIR}/$1"
}

# hashes NAME...: " #SHA256" of the password in each file NAME that is there (a "USER
# PASSWORD" file's second word): ACL rules that accept each, without writing them in clear.
hashes() {
  for name in "$@"; do
    value=$(secret "${name}")
    [ -n "${value}" ] || continue
    case "${value}" in *' '*) value="${value#* }" ;; esac
    printf ' #%s' "$(printf '%s' "${value}" | sha256sum | cut -d' ' -f1)"
  done
}

# service_user: the service's user name, from the file "service" ("USER PASSWORD").
service_user() {
  value=$(secret service)
  echo "${value%% *}"
}

# redis_acl: the lines of redis.conf that set who may connect: the default user with the
# admin password(s) (current and, during a rotation, previous), the service's user with its
# own, and the master's password for replication.
redis_acl() {
  [ -n "$(secret password)" ] || return 0
  echo "user default on$(hashes password password-previous) ~* &* +@all"
  [ -z "$(secret service)" ] ||
    echo "user $(service_user) on$(hashes service service-previous) resetkeys ~tlscache:* resetchannels &tlscache:* ${SERVICE_COMMANDS}"
  echo "masterauth $(secret password)"
}

# sentinel_acl: the same for a sentinel: who may connect to it, and the password it gives
# to Redis and to the other sentinels.
sentinel_acl() {
  [ -n "$(secret password)" ] || return 0
  echo "user default on$(hashes password password-previous) ~* &* +@all"
  [ -z "$(secret service)" ] ||
    echo "user $(service_user) on$(hashes service service-previous) resetchannels &* ${SENTINEL_SERVICE_COMMANDS}"
  echo "sentinel auth-pass tlscache $(secret password)"
  echo "sentinel sentinel-pass $(secret password)"
}
