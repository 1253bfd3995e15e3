#!/usr/bin/env bash
# Stop the single-node SLURM that .ci/slurm-up.sh started: each daemon by its PID file, nothing by name.
set -uo pipefail
STATE=${SLURM_CI_DIR:-/var/tmp/vqvideo-slurm}

stop() {  # stop PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
}

scancel --user="$(id -un)" 2>/dev/null || true
stop "$STATE/slurmd.pid"
stop "$STATE/slurmctld.pid"
stop /run/munge/munged.pid
echo "slurm-down: stopped"
