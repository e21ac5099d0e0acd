#!/usr/bin/env bash
# Stop the one-node Slurm started by .ci/slurm-up.sh (its daemons only, by their pid files).
DIR=${XAUG_SLURM_DIR:-/tmp/xaug-slurm}
scancel --user="$(id -un)" 2>/dev/null || true
for name in slurmd slurmctld; do
  [ -f "$DIR/$name.pid" ] && kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
done
if [ -f "$DIR/munged.started" ] && [ -f /run/munge/munged.pid ]; then
  kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  rm -f "$DIR/munged.started"
fi
exit 0
