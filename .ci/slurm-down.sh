#!/usr/bin/env bash
# Stop the SLURM that .ci/slurm-up.sh started: each daemon by its PID file, nothing by name; then remove the
# two nodes' network namespaces, their veth pairs and the bridge (SLURM_DOWN_KEEP_NET=1 keeps those, and munge:
# slurm-up.sh uses that to restart the daemons with a new slurm.conf).
set -uo pipefail
STATE=${SLURM_CI_DIR:-/var/tmp/vqvideo-slurm}
NODES="node1 node2"

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
for pidfile in "$STATE"/slurmd.*pid; do stop "$pidfile"; done  # slurmd.<node>.pid (and an older slurmd.pid)
stop "$STATE/slurmctld.pid"
if [ -z "${SLURM_DOWN_KEEP_NET:-}" ]; then
  stop /run/munge/munged.pid
  i=0
  for node in $NODES; do
    i=$((i + 1))
    ip link del "vq$i-h" 2>/dev/null || true  # its peer vq0 in the namespace goes with it
    ip netns del "$node" 2>/dev/null || true
  done
  ip link del vqbr0 2>/dev/null || true
fi
echo "slurm-down: stopped"
