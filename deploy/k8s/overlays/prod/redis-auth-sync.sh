#!/bin/sh
# The "auth" sidecar of Redis and Sentinel pods: applies the Secret's passwords to the running
# server whenever the Secret's files change (the kubelet updates a mounted Secret in place
# within a minute or two), so that a password is rotated without restarting anything:
#   redis-auth-sync.sh redis|sentinel [--once]
# Each user accepts the password in its file and, during a rotation, the one in its
# "-previous" file (ACL users hold several passwords); the passwords this server gives to
# others (a replica's masterauth, a sentinel's auth-pass and sentinel-pass) are the current
# "password". Applied with ACL SETUSER (only hashes) and persisted to the configuration on the
# volume (CONFIG REWRITE, SENTINEL FLUSHCONFIG), so a restart keeps them too.
set -u
CONFIG_DIR="${CONFIG_DIR:-/config}"
REDIS_PORT="${REDIS_PORT:-6379}"
SENTINEL_PORT="${SENTINEL_PORT:-26379}"
INTERVAL="${INTERVAL:-10}"
. "${CONFIG_DIR}/find-master.sh"

kind="$1"
case "${kind}" in
  redis) port="${REDIS_PORT}" ;;
  sentinel) port="${SENTINEL_PORT}" ;;
  *) echo "usage: redis-auth-sync.sh redis|sentinel [--once]" >&2; exit 2 ;;
esac

# The passwords this script may authenticate with: the last that worked, then the files'.
last_good=""

# cli ARGS...: redis-cli to this server, authenticated; with INPUT set, the commands it holds
# are sent on stdin instead (a password to give to others never goes on a command line).
INPUT=""
cli() {
  for candidate in "${last_good}" "$(secret password)" "$(secret password-previous)"; do
    [ -n "${candidate}" ] || continue
    if [ -n "${INPUT}" ]; then
      out=$(printf '%s\n' "${INPUT}" |
        REDISCLI_AUTH="${candidate}" timeout 5 redis-cli -p "${port}" --raw 2>&1) || continue
    else
      out=$(REDISCLI_AUTH="${candidate}" timeout 5 redis-cli -p "${port}" --raw "$@" 2>&1) ||
        continue
    fi
    case "${out}" in
      *NOAUTH* | *WRONGPASS*) continue ;;
    esac
    last_good="${candidate}"
    printf '%s\n' "${out}"
    return 0
  done
  echo "cannot authenticate to ${kind} on port ${port} with any password in ${SECRETS_DIR}" >&2
  return 1
}

# expect_ok COMMAND...: runs it, failing unless the answer is OK.
expect_ok() {
  answer=$(cli "$@") || return 1
  [ "${answer}" = OK ] || { echo "$1 $2: ${answer}" >&2; return 1; }
}

apply() {
  expect_ok acl setuser default on resetpass $(hashes password password-previous) \
    '~*' '&*' +@all || return 1
  if [ -n "$(secret service)" ]; then
    if [ "${kind}" = redis ]; then
      expect_ok acl setuser "$(service_user)" on resetpass $(hashes service service-previous) \
        resetkeys '~tlscache:*' resetchannels '&tlscache:*' ${SERVICE_COMMANDS} || return 1
    else
      expect_ok acl setuser "$(service_user)" on resetpass $(hashes service service-previous) \
        resetchannels '&*' ${SENTINEL_SERVICE_COMMANDS} || return 1
    fi
  fi
  # The password given to others goes on stdin, not on a command line.
  if [ "${kind}" = redis ]; then
    INPUT="CONFIG SET masterauth $(secret password)
CONFIG REWRITE"
  else
    INPUT="SENTINEL SET tlscache auth-pass $(secret password)
SENTINEL CONFIG SET sentinel-pass $(secret password)
SENTINEL FLUSHCONFIG"
  fi
  answers=$(cli)
  status=$?
  INPUT=""
  if [ "${status}" -ne 0 ] || [ "$(printf '%s\n' "${answers}" | grep -cvx OK)" -ne 0 ]; then
    echo "setting the password given to others failed: ${answers}" >&2
    return 1
  fi
  return 0
}

fingerprint() {
  for name in password password-previous service service-previous; do
    printf '%s:' "${name}"; secret "${name}" | sha256sum
  done | sha256sum | cut -d' ' -f1
}

applied=""
while true; do
  now=$(fingerprint)
  if [ "${now}" != "${applied}" ]; then
    if apply; then
      applied="${now}"
      echo "$(date -u +%FT%TZ) applied the passwords of ${SECRETS_DIR} (${now%????????????????????????????????????????????????????????})"
    fi
  fi
  [ "${2:-}" != --once ] || { [ -n "${applied}" ]; exit $?; }
  sleep "${INTERVAL}"
done
