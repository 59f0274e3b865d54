#!/usr/bin/env bash
# Wait until the given nodes (all by default) answer over SSH and systemd has finished starting
# (degraded is fine: some units of a minimal image cannot run), then load the package lists of
# the local repository (the image's lists are the mirror's, from mmdebstrap).  Run by up.sh and,
# for each node Vagrant brings up, by the Vagrantfile's trigger.
source "$(dirname "$0")/env.sh"
nodes=("$@")
((${#nodes[@]})) || nodes=("${MF_NODES[@]}")
ssh_node() { ssh -F "$MF_SSH/config" -o ConnectTimeout=2 "$@"; }
pids=()
for node in "${nodes[@]}"; do
  for _ in $(seq 1 100); do
    ssh_node "$node" true 2>/dev/null && break
    sleep 0.1
  done
  state=$(ssh_node "$node" timeout 120 systemctl is-system-running --wait || true)
  case $state in running|degraded) ;; *) mf_log "$node: systemd $state"; exit 1 ;; esac
  mf_log "$node: systemd $state, ssh answering at $(mf_ip "$node")"
  ssh_node "$node" apt-get update -qq >/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
