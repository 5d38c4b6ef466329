#!/bin/sh
# Writes this sentinel's configuration (sentinels rewrite it, so it lives in /data): it
# monitors the master the other sentinels know, else pod 0 of tlscache-redis.
set -eu
cp /config/sentinel.conf /data/sentinel.conf
echo "sentinel announce-ip ${HOSTNAME}.tlscache-sentinel" >> /data/sentinel.conf
master=$(redis-cli -h tlscache-sentinel -p 26379 --raw \
  sentinel get-master-addr-by-name tlscache 2>/dev/null | head -n 1 || true)
[ -n "${master}" ] || master="tlscache-redis-0.tlscache-redis"
echo "sentinel monitor tlscache ${master} 6379 2" >> /data/sentinel.conf
