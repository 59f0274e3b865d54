#!/usr/bin/env bash
# Bring the mock farm up: host fixes, node image, local apt repository and wheelhouse (all cached
# under .mockfarm/), an internal podman network (no route out of the machine) and the systemd
# containers ft-evb, ft-storage, ft-head, ft-worker1, ft-worker2 and ft-l2 (the 6x6x6 L2 event
# builder), reachable over SSH from the host (.mockfarm/ssh/config, used by the mockfarm
# inventory and by testinfra).  Provisioning is
# separate (provision.sh: ansible-playbook -i inventories/mockfarm site.yml), so each step can be
# timed.  Running it again on a running farm changes nothing.
source "$(dirname "$0")/env.sh"
here=$(dirname "$0")

"$here/host.sh" docker

hosts=()
for node in "${MF_NODES[@]}"; do hosts+=(--add-host "$node:$(mf_ip "$node")"); done
for node in "${MF_NODES[@]}"; do
  name=$MF_PREFIX$node
  if podman container exists "$name"; then
    [ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] || podman start "$name" >/dev/null
    continue
  fi
  shared=()
  [ "$node" = storage ] || shared=(--volume "$MF_DIR/home-prod:/home/prod")
  podman run --detach --quiet --name "$name" --hostname "$node" \
    --network "$MF_NETWORK" --ip "$(mf_ip "$node")" "${hosts[@]}" \
    --systemd=always --tmpfs /tmp --tmpfs /run \
    --volume "$MF_DIR/repo:/srv/ft-repo:ro" --volume "$MF_DIR/wheels:/srv/ft-wheels:ro" \
    "${shared[@]}" \
    --volume "$MF_SSH/authorized_keys:/root/.ssh/authorized_keys:ro" \
    --label ft.mockfarm=1 "$MF_IMAGE" >/dev/null
done
"$here/ready.sh"
