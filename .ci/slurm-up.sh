#!/usr/bin/env bash
# Bring up a small SLURM on this machine (Debian 12: slurm-wlm 22.05, munge), for tests/workflow/test_slurm.py and
# the two-node tests of tests/workflow/test_multinode.py.
#
#   .ci/slurm-up.sh      # as root; installs nothing (.ci/run apt-installs slurm-wlm and munge first)
#   .ci/slurm-down.sh    # stops the daemons by their PID files, removes the namespaces and the bridge
#
# Three nodes, one slurmctld:
# - `local` (partition `debug`, the default): this machine's loopback, with this machine's CPUs and memory (not
#   named `localhost`: slurmctld then refuses any other node, "Duplicated NodeHostName").
# - `node1`, `node2` (partition `multi`): two "machines" made here, each a network namespace with its own
#   address (10.199.77.11 and .12 on interface vq0, a veth pair onto the bridge vqbr0 = 10.199.77.1 on this
#   machine) and its own hostname (a UTS namespace), each running its own slurmd. Debian's slurmd is built
#   without --enable-multiple-slurmd, so two slurmd cannot share one address; in namespaces each one is a
#   plain single slurmd. /etc/netns/<node>/hosts (which `ip netns exec` mounts over /etc/hosts) names both
#   nodes, so torchrun's rendezvous and gloo find each other by hostname; GLOO_SOCKET_IFNAME=vq0 names the
#   interface. Traffic stays on this machine: the bridge has no uplink and IP forwarding is not touched.
# Every node: select/cons_tres, proctrack/linuxproc, task/none, no accounting (so no sacct: the test profile
# tells the Snakemake plugin to poll squeue), DefMemPerCPU so a job without --mem does not take the whole
# node, and two fake GPUs each (GresTypes=gpu, Gres=gpu:2; gres.conf lists distinct character devices made
# with mknod as copies of /dev/null: slurmd refuses the same file twice, and complains about plain files).
# AuthInfo=cred_expire=20: a requeued job (vqvideo.launch --requeue after a clean stop) may start again after
# the credential lifetime, 120 s by default; 20 s keeps the requeue test short and is still ample for slurmd to
# launch a step on this machine. SchedulerParameters=sched_interval=2: a requeued job becomes eligible when its
# credential expires, an event that triggers no scheduling; the main loop's periodic pass (every 60 s by
# default) starts it, so it waited 35-64 s; with a pass every 2 s, about 20 s (3 nodes, a few jobs: the pass
# costs nothing).
# If slurm.conf changes (e.g. a machine still running the single-node cluster of an older checkout), the
# daemons are restarted with the new one.
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


# --- the two namespaced nodes: a bridge on this machine, one veth pair and one network namespace per node
NET=10.199.77
NODES="node1 node2"
ip link show vqbr0 >/dev/null 2>&1 || ip link add vqbr0 type bridge
# (no `| grep -q` under pipefail: grep quitting early fails the pipe)
[[ "$(ip addr show dev vqbr0)" == *"inet $NET.1/24"* ]] || ip addr add "$NET.1/24" dev vqbr0
ip link set vqbr0 up
i=0
for node in $NODES; do
  i=$((i + 1))
  [ -e "/run/netns/$node" ] || ip netns add "$node"
  ip link show "vq$i-h" >/dev/null 2>&1 || ip link add "vq$i-h" type veth peer name vq0 netns "$node"
  ip link set "vq$i-h" master vqbr0
  ip link set "vq$i-h" up
  ip -n "$node" link set lo up
  [[ "$(ip -n "$node" addr show dev vq0)" == *"inet $NET.1$i/24"* ]] || ip -n "$node" addr add "$NET.1$i/24" dev vq0
  ip -n "$node" link set vq0 up
  { echo "127.0.0.1 localhost"; echo "$NET.1 vqctl"; j=0
    for other in $NODES; do j=$((j + 1)); echo "$NET.1$j $other"; done; } >"$STATE/hosts.$node"
done

# --- fake GPUs: two distinct character devices per node (copies of /dev/null, major 1 minor 3)
for node in local $NODES; do
  for g in 0 1; do
    [ -c "$STATE/fakegpu-$node-$g" ] || mknod "$STATE/fakegpu-$node-$g" c 1 3
    chmod 666 "$STATE/fakegpu-$node-$g"
  done
done

# --- this machine's CPUs and memory, as slurmd sees them (leave some memory to the OS); the namespaced nodes
# share them (a test cluster: its jobs are small)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)

conf=$(mktemp)
cat >"$conf" <<END_OF_CONF
# written by .ci/slurm-up.sh: a three-node SLURM on one machine for the vqvideo tests
ClusterName=vqvideo-ci
SlurmctldHost=localhost($NET.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=20
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d/%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
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
NodeName=local NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
NodeName=node1 NodeAddr=$NET.11 CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
NodeName=node2 NodeAddr=$NET.12 CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=local Default=YES MaxTime=INFINITE State=UP
PartitionName=multi Nodes=node1,node2 MaxTime=INFINITE State=UP
END_OF_CONF
if [ -f "$CONF_DIR/slurm.conf" ] && ! cmp -s "$conf" "$CONF_DIR/slurm.conf" && [ -f "$STATE/slurmctld.pid" ]; then
  echo "slurm-up: slurm.conf changed; restarting the daemons" >&2
  SLURM_DOWN_KEEP_NET=1 "$(dirname "$0")/slurm-down.sh" >/dev/null
fi
mv "$conf" "$CONF_DIR/slurm.conf" && chmod 644 "$CONF_DIR/slurm.conf"
for node in local $NODES; do
  for g in 0 1; do echo "NodeName=$node Name=gpu File=$STATE/fakegpu-$node-$g"; done
done >"$CONF_DIR/gres.conf"
# Debian's plugstack.conf includes plugstack.conf.d/*; keep whatever is there.
for node in local $NODES; do mkdir -p "$STATE/d/$node"; done

# --- the daemons (each writes its PID file; slurm-down.sh reads them)
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$STATE/slurmctld.pid" || /usr/sbin/slurmctld -i
running "$STATE/slurmd.local.pid" || /usr/sbin/slurmd -N local
for node in $NODES; do
  # in the node's network namespace, with its own hostname and /etc/hosts (a mount namespace of its own, but
  # the machine's /sys: `ip netns exec` would mount a fresh /sys without the cgroup mounts slurmd needs)
  running "$STATE/slurmd.$node.pid" ||
    nsenter --net="/run/netns/$node" unshare --mount --uts sh -c \
      "mount --bind $STATE/hosts.$node /etc/hosts && hostname $node && exec /usr/sbin/slurmd -N $node"
done

# --- wait until every node takes jobs
ready() { [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -cE ' (idle|mix|alloc)$')" -eq 3 ]; }
for _ in $(seq 60); do
  ready && break
  for node in $(sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 ~ /^(down|drain)/ {print $1}'); do
    scontrol update nodename="$node" state=resume 2>/dev/null || true
  done
  sleep 1
done
if ! ready; then
  echo "slurm-up: nodes not ready:" >&2
  sinfo -N -o "%N %t %E" >&2 || true
  tail -n 20 "$STATE"/log/*.log >&2 || true
  exit 1
fi
sinfo -N -o "%N %P %t %c %m %G"
