#!/usr/bin/env bash
# Start, stop or locate a private Docker engine for builds and tests, without touching the host's
# network: no iptables rules, no bridge, no forwarding, no masquerading. Containers and builds use
# network "none" or "host". The engine keeps all its state under one folder and is stopped by the pid
# it wrote, so it never disturbs another engine on the machine.
#
#   bash ci/docker-engine.sh start   # idempotent; prints the line to eval
#   bash ci/docker-engine.sh env     # prints: export DOCKER_HOST=unix:///.../docker.sock
#   bash ci/docker-engine.sh status  # exit 0 when the engine answers
#   bash ci/docker-engine.sh stop    # idempotent
#
# SKILLMAKER_DOCKER_DIR picks the folder (default /var/tmp/skillmaker-docker).
set -euo pipefail

ROOT="${SKILLMAKER_DOCKER_DIR:-/var/tmp/skillmaker-docker}"
SOCKET="$ROOT/docker.sock"
PIDFILE="$ROOT/docker.pid"
LOG="$ROOT/dockerd.log"
HOST="unix://$SOCKET"

engine_answers() {
  [ -S "$SOCKET" ] && DOCKER_HOST="$HOST" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

engine_pid() {
  # The pid of our dockerd, or nothing when the pidfile is stale.
  [ -f "$PIDFILE" ] || return 0
  local pid
  pid="$(cat "$PIDFILE")"
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "dockerd.*$PIDFILE"; then
    echo "$pid"
  fi
}

start() {
  if engine_answers; then
    echo "export DOCKER_HOST=$HOST"
    return 0
  fi
  command -v dockerd >/dev/null || { echo "docker-engine.sh: dockerd not installed (run ci/install-deps.sh)" >&2; exit 2; }
  if [ "$(id -u)" != 0 ]; then
    echo "docker-engine.sh: starting dockerd needs root" >&2
    exit 2
  fi
  if [ -n "$(engine_pid)" ]; then
    echo "docker-engine.sh: dockerd (pid $(engine_pid)) is starting; waiting" >&2
  else
    mkdir -p "$ROOT/data" "$ROOT/exec"
    rm -f "$SOCKET" "$PIDFILE"
    # setsid: the engine outlives this script and the shell that ran it.
    setsid dockerd \
      --host "$HOST" \
      --data-root "$ROOT/data" \
      --exec-root "$ROOT/exec" \
      --pidfile "$PIDFILE" \
      --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
      --userland-proxy=false \
      >>"$LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 120); do
    if engine_answers; then
      echo "export DOCKER_HOST=$HOST"
      return 0
    fi
    sleep 0.5
  done
  echo "docker-engine.sh: dockerd did not answer on $SOCKET within 60 s; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2 || true
  exit 1
}

stop() {
  local pid
  pid="$(engine_pid)"
  if [ -z "$pid" ]; then
    rm -f "$PIDFILE"
    echo "docker-engine.sh: not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    [ -d "/proc/$pid" ] || { echo "docker-engine.sh: stopped (pid $pid)"; return 0; }
    sleep 0.5
  done
  echo "docker-engine.sh: dockerd (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL" >&2
  kill -KILL "$pid" || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export DOCKER_HOST=$HOST" ;;
  status)
    if engine_answers; then echo "running: $HOST"; else echo "not running"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
