#!/usr/bin/env bash
# Start a one-node Slurm on this machine (munged, slurmctld, slurmd) for the Slurm tests; stop it with
# .ci/slurm-down.sh. Installs Debian's slurm-wlm and munge when they are missing (needs root).
# Accounting: Debian's Slurm has no accounting_storage/filetxt any more, so without slurmdbd `sacct` has nothing
# to read; finished jobs are written by jobcomp/filetxt to $XAUG_SLURM_DIR/jobcomp.log and shown by
# `squeue -t all` / `scontrol show job` for MinJobAge seconds. Addresses are 127.0.0.1, so a container whose
# hostname does not resolve works too. Uses no procps (pgrep, free): a minimal Debian image has none. Running it
# again while the daemons run rewrites slurm.conf and starts nothing twice.
# GPUs: the node offers two stand-in GPUs (plain files; slurmd logs that they are no devices and counts them
# anyway), so a job asking `--gpus-per-node=2` is scheduled as on a GPU node (SLURM_GPUS_ON_NODE=2, no
# CUDA_VISIBLE_DEVICES) and one asking for 3 is refused: the tests check that xaug's GPU requests reach Slurm.
set -euo pipefail
DIR=${XAUG_SLURM_DIR:-/tmp/xaug-slurm}
CONF=/etc/slurm/slurm.conf
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
mkdir -p "$DIR"/{state,spool,log} /etc/slurm /etc/munge /run/munge /var/log/munge /var/lib/munge
# The key first, then the owner: munged (run as munge) refuses a key it does not own.
[ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || create-munge-key -f; }
chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
touch "$DIR/gpu0" "$DIR/gpu1"
echo "NodeName=$HOST Name=gpu File=$DIR/gpu[0-1]" > /etc/slurm/gres.conf
cat > "$CONF" <<CONF
ClusterName=xaug-ci
GresTypes=gpu
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
MinJobAge=600
KillWait=5
JobRequeue=1
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! munge -n </dev/null >/dev/null 2>&1; then  # remembered, so that slurm-down.sh stops only a munged started here
  su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
  touch "$DIR/munged.started"
fi
running "$DIR/slurmctld.pid" || /usr/sbin/slurmctld
running "$DIR/slurmd.pid" || /usr/sbin/slurmd
for _ in $(seq 60); do
  if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then sinfo; exit 0; fi
  scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm-up: the node did not become idle; see $DIR/log/" >&2
sinfo >&2 || true
exit 1
