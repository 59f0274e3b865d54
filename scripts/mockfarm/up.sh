#!/usr/bin/env bash
# Bring the mock farm up: host fixes, node image, local apt repository and wheelhouse (all cached
# under .mockfarm/), an internal podman network (no route out of the machine) and the systemd
# containers ft-evb, ft-storage, ft-head, ft-worker1, ft-worker2.  Provisioning is separate
# (provision.sh: ansible-playbook -i inventories/mockfarm site.yml), so tests can time each step.
# Running it again on a running farm changes nothing.
source "$(dirname "$0")/env.sh"
here=$(dirname "$0")

"$here/image.sh"
"$here/repo.sh"
"$here/wheels.sh"

if ! podman network exists "$MF_NETWORK"; then
  mf_log "creating the internal network $MF_NETWORK ($MF_SUBNET)"
  podman network create --internal --subnet "$MF_SUBNET" "$MF_NETWORK" >/dev/null
fi
hosts=()
for node in "${MF_NODES[@]}"; do hosts+=(--add-host "$node:$(mf_ip "$node")"); done
for node in "${MF_NODES[@]}"; do
  name=$MF_PREFIX$node
  if podman container exists "$name"; then
    [ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] || podman start "$name" >/dev/null
    continue
  fi
  podman run --detach --quiet --name "$name" --hostname "$node" \
    --network "$MF_NETWORK" --ip "$(mf_ip "$node")" "${hosts[@]}" \
    --systemd=always --tmpfs /tmp --tmpfs /run \
    --volume "$MF_DIR/repo:/srv/ft-repo:ro" --volume "$MF_DIR/wheels:/srv/ft-wheels:ro" \
    --label ft.mockfarm=1 "$MF_IMAGE" >/dev/null
done
# Wait for systemd in every node (degraded is fine: some units of a minimal image cannot run).
for node in "${MF_NODES[@]}"; do
  for _ in $(seq 1 100); do
    state=$(podman exec "$MF_PREFIX$node" systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) break ;; esac
    sleep 0.1
  done
  mf_log "$node: systemd $state"
done
# Package lists of the local repository (the image's lists are the mirror's, from mmdebstrap).
for node in "${MF_NODES[@]}"; do
  podman exec "$MF_PREFIX$node" apt-get update -qq >/dev/null &
done
wait
