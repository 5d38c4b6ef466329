# find_master: sourced by redis-init.sh and sentinel-init.sh. Asks every sentinel in
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

# The Redis password (a Secret's file), for redis-cli here and for the configs written.
if [ -r "${PASSWORD_FILE}" ]; then
  REDISCLI_AUTH=$(cat "${PASSWORD_FILE}")
  export REDISCLI_AUTH
fi
