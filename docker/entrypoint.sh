#!/usr/bin/env bash
# Container entrypoint: install the SSH keys, start sshd for the multi-node launcher, run the command.
#   GRADVAC_SSH_KEY_DIR (default /ssh-keys): a mounted folder with a private key (id_*) and its .pub;
#     the .pub files become authorized_keys, so every node that mounts the same folder trusts the others.
#   GRADVAC_START_SSHD (default 1): 0 skips sshd (single node, or a torchrun/SLURM launch).
set -euo pipefail

key_dir=${GRADVAC_SSH_KEY_DIR:-/ssh-keys}
if [ -d "$key_dir" ]; then
  install -d -m 700 /root/.ssh
  for key in "$key_dir"/id_*; do
    [ -f "$key" ] && install -m 600 "$key" /root/.ssh/
  done
  if compgen -G "$key_dir/*.pub" >/dev/null; then
    cat "$key_dir"/*.pub > /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
  fi
fi

if [ "${GRADVAC_START_SSHD:-1}" = 1 ]; then
  ssh-keygen -A >/dev/null  # this container's own host keys: the image holds none (docker/Dockerfile)
  /usr/sbin/sshd
fi

exec "$@"
