#!/usr/bin/env bash
# Tear the mock farm down: the ft- containers and network that up.sh or Vagrant and host.sh
# made, nothing else (after `vagrant destroy -f`, the containers are gone already).  The
# caches under .mockfarm/ stay (remove the directory by hand for a cold start); the shared
# production home goes with the containers.
source "$(dirname "$0")/env.sh"
# Close the SSH master connections (ControlPersist) to the nodes first.
if [ -f "$MF_SSH/config" ]; then
  for node in "${MF_NODES[@]}"; do
    ssh -F "$MF_SSH/config" -O exit "$node" >/dev/null 2>&1 || true
  done
fi
for node in "${MF_NODES[@]}"; do
  if podman container exists "$MF_PREFIX$node"; then
    podman rm --force --time 5 "$MF_PREFIX$node" >/dev/null
  fi
done
if podman network exists "$MF_NETWORK"; then
  bridge=$(podman network inspect "$MF_NETWORK" --format '{{.NetworkInterface}}')
  podman network rm "$MF_NETWORK" >/dev/null
  # host.sh made the bridge before any node: remove it if podman left it.
  if [ -n "$bridge" ] && ip link show dev "$bridge" >/dev/null 2>&1; then
    ip link delete "$bridge"
  fi
fi
# The shared production home is farm state, like the containers' own disks.
rm -rf "$MF_DIR/home-prod"
mf_log "mock farm down"
