#!/bin/sh
# Writes this Redis pod's configuration: a replica of the master the sentinels know, or, when
# no sentinel answers yet (a new deployment), pod 0 is the master and the others replicate it.
set -eu
self="${HOSTNAME}.tlscache-redis"
cp /config/redis.conf /data/redis.conf
echo "replica-announce-ip ${self}" >> /data/redis.conf
master=$(redis-cli -h tlscache-sentinel -p 26379 --raw \
  sentinel get-master-addr-by-name tlscache 2>/dev/null | head -n 1 || true)
if [ -z "${master}" ]; then
  [ "${HOSTNAME##*-}" = 0 ] && exit 0
  master="tlscache-redis-0.tlscache-redis"
fi
case "${master}" in
  "${self}"*) ;;
  *) echo "replicaof ${master} 6379" >> /data/redis.conf ;;
esac
