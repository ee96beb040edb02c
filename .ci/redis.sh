#!/usr/bin/env bash
# Makes sure a Redis server answers on 127.0.0.1:6379, for the tests of limits shared by several
# instances (tests/test_limits.py): installs Debian's redis-server when it is missing (as root)
# and starts one that keeps nothing on disk when none answers.
set -euo pipefail
say() { echo "redis.sh: $*" >&2; }

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing redis-server with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
  else
    say "redis-server is needed by the tests: sudo apt-get install redis-server"
    exit 1
  fi
fi
if [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" != PONG ]]; then
  say "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
  for _ in $(seq 50); do
    [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]] && exit 0
    sleep 0.1
  done
  say "redis-server did not answer"
  exit 1
fi
