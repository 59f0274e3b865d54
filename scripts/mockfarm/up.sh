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

"$here/image.sh"
"$here/repo.sh"
"$here/wheels.sh"

# SSH: one key for the farm, put in root's authorized_keys by a read-only mount; the nodes share
# the image's host keys, so known_hosts is not kept.
mkdir -p "$MF_SSH"
chmod 0700 "$MF_SSH"
[ -s "$MF_SSH/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C ft-mockfarm -f "$MF_SSH/id_ed25519"
cp "$MF_SSH/id_ed25519.pub" "$MF_SSH/authorized_keys"
chmod 0600 "$MF_SSH/authorized_keys"
{
  echo "# Made by scripts/mockfarm/up.sh: ssh -F $MF_SSH/config <node>"
  echo "Host ${MF_NODES[*]}"
  echo "  User root"
  echo "  IdentityFile $MF_SSH/id_ed25519"
  echo "  IdentitiesOnly yes"
  echo "  StrictHostKeyChecking no"
  echo "  UserKnownHostsFile /dev/null"
  echo "  LogLevel ERROR"
  echo "  ControlMaster auto"
  echo "  ControlPath $MF_SSH/cm-%n"
  echo "  ControlPersist 15m"
  for node in "${MF_NODES[@]}"; do
    echo "Host $node"
    echo "  HostName $(mf_ip "$node")"
  done
} > "$MF_SSH/config"

if ! podman network exists "$MF_NETWORK"; then
  mf_log "creating the internal network $MF_NETWORK ($MF_SUBNET)"
  podman network create --internal --subnet "$MF_SUBNET" "$MF_NETWORK" >/dev/null
fi
hosts=()
for node in "${MF_NODES[@]}"; do hosts+=(--add-host "$node:$(mf_ip "$node")"); done
# The production home is shared by the event builders, the head and the workers, as a farm's
# home is (NFS): batch jobs write their logs and status files where the manager reads them.
# The storage node keeps its own.  down.sh removes it with the containers (it is farm state).
mkdir -p "$MF_DIR/home-prod"
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
# The bridge exists once a container is attached; give the host its address there.
bridge=$(podman network inspect "$MF_NETWORK" --format '{{.NetworkInterface}}')
if ! ip -o addr show dev "$bridge" | grep -q " $MF_HOST_IP/"; then
  ip addr add "$MF_HOST_IP/${MF_SUBNET#*/}" dev "$bridge"
fi
# Wait for systemd in every node (degraded is fine: some units of a minimal image cannot run),
# then for its SSH server.
for node in "${MF_NODES[@]}"; do
  for _ in $(seq 1 100); do
    state=$(podman exec "$MF_PREFIX$node" systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) break ;; esac
    sleep 0.1
  done
  for _ in $(seq 1 100); do
    ssh -F "$MF_SSH/config" -o ConnectTimeout=2 "$node" true 2>/dev/null && break
    sleep 0.1
  done
  ssh -F "$MF_SSH/config" -o ConnectTimeout=2 "$node" true
  mf_log "$node: systemd $state, ssh answering at $(mf_ip "$node")"
done
# Package lists of the local repository (the image's lists are the mirror's, from mmdebstrap).
pids=()
for node in "${MF_NODES[@]}"; do
  ssh -F "$MF_SSH/config" "$node" apt-get update -qq >/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
