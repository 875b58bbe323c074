# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/evidence.sh: run_forwarding_signals CMD... runs CMD in the
# background and waits for it; a SIGTERM, SIGINT or SIGHUP to the script is passed on to CMD (the
# deepspeed runner, which stops its workers after their next step and final checkpoint), and the
# script then exits with CMD's status instead of going on to the next stage. A foreground command
# would not get the signal: bash runs its traps only after the command ends.
run_forwarding_signals() {
  local child status=0
  "$@" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do  # wait returns early when a trapped signal arrives
    wait "$child" || status=$?
  done
  trap - TERM INT HUP
  return "$status"
}
