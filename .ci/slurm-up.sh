#!/usr/bin/env bash
# Bring up a single-node SLURM on this machine (Debian 12: slurm-wlm 22.05, munge), for tests/workflow/test_slurm.py.
#
#   .ci/slurm-up.sh      # as root; installs nothing (.ci/run apt-installs slurm-wlm and munge first)
#   .ci/slurm-down.sh    # stops the daemons by their PID files
#
# One node `localhost` with this machine's CPUs and memory, one partition `debug`, select/cons_tres,
# proctrack/linuxproc, task/none, no accounting (so no sacct: the test profile tells the Snakemake plugin
# to poll squeue), DefMemPerCPU so a job without --mem does not take the whole node, and two fake GPUs
# (GresTypes=gpu, Gres=gpu:2; gres.conf lists two distinct character devices made with mknod as copies of
# /dev/null: slurmd refuses the same file twice, and complains about plain files).
set -euo pipefail

STATE=${SLURM_CI_DIR:-/var/tmp/vqvideo-slurm}
CONF_DIR=/etc/slurm
[ "$(id -u)" -eq 0 ] || { echo "slurm-up: run as root" >&2; exit 1; }
for exe in munged slurmctld slurmd sbatch squeue; do
  command -v "$exe" >/dev/null || { echo "slurm-up: $exe not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done

mkdir -p "$STATE"/{ctld,d,log} "$CONF_DIR"

# --- munge: a key, and the daemon as the munge user
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
fi

# --- fake GPUs: two distinct character devices (copies of /dev/null, major 1 minor 3)
for i in 0 1; do
  [ -c "$STATE/fakegpu$i" ] || mknod "$STATE/fakegpu$i" c 1 3
  chmod 666 "$STATE/fakegpu$i"
done

# --- this machine's CPUs and memory, as slurmd sees them (leave some memory to the OS)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)

cat >"$CONF_DIR/slurm.conf" <<EOF
# written by .ci/slurm-up.sh: single-node SLURM for the vqvideo tests
ClusterName=vqvideo-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
DefMemPerCPU=1000
MinJobAge=300
KillWait=30
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
cat >"$CONF_DIR/gres.conf" <<EOF
NodeName=localhost Name=gpu File=$STATE/fakegpu0
NodeName=localhost Name=gpu File=$STATE/fakegpu1
EOF
# Debian's plugstack.conf includes plugstack.conf.d/*; keep whatever is there.

# --- the daemons (each writes its PID file; slurm-down.sh reads them)
if ! { [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; }; then
  /usr/sbin/slurmctld -i
fi
if ! { [ -f "$STATE/slurmd.pid" ] && kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null; }; then
  /usr/sbin/slurmd -N localhost
fi

# --- wait until the node takes jobs
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
  case "$state" in idle|mix|alloc) break ;; down*|drain*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;; esac
  sleep 1
done
state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
if [ "$state" != idle ] && [ "$state" != mix ] && [ "$state" != alloc ]; then
  echo "slurm-up: node not ready (state '$state'); logs in $STATE/log" >&2
  tail -n 20 "$STATE"/log/*.log >&2 || true
  exit 1
fi
sinfo -N -o "%N %t %c %m %G"
