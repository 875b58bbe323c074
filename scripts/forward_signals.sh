# shellcheck shell=bash
# Sourced by scripts/demo.sh, scripts/evidence.sh and launch/slurm.sbatch: run_forwarding_signals
# CMD... runs CMD in the background and waits for it; a SIGTERM, SIGINT or SIGHUP to the script is
# passed on to CMD as SIGTERM (the launcher, which stops its workers after their next step and final
# checkpoint; a background job ignores SIGINT, and srun reads a single SIGINT as a status request),
# and the function returns CMD's own exit status, so that under `set -e` the script stops there
# instead of going on to its next stage. A foreground command would not get the signal: bash runs a
# trap only once its foreground child has ended, while a trapped signal interrupts `wait`.
run_forwarding_signals() {
  local status=0
  forwarded_pid=
  trap '[ -z "$forwarded_pid" ] || kill -s TERM "$forwarded_pid" 2>/dev/null || true' TERM INT HUP
  "$@" &
  forwarded_pid=$!
  while kill -0 "$forwarded_pid" 2>/dev/null; do
    wait "$forwarded_pid" || true  # returns early (> 128) when a trapped signal arrives
  done
  wait "$forwarded_pid" || status=$?  # the ended child's own status, which bash keeps
  trap - TERM INT HUP
  return "$status"
}
