#!/usr/bin/env bash
# The host's side of the mock farm, before any node exists: host fixes, the mock farm's secrets,
# the wheelhouse and SSH key every provider needs, and for the podman containers (`host.sh docker`,
# the default) the node image, the local apt repository, the internal network and the host's
# address on it.  Everything is cached under .mockfarm/ or left in place, so running it again
# changes nothing.  `make mockfarm-up` calls it before `vagrant up`; up.sh (podman alone) too.
source "$(dirname "$0")/env.sh"
here=$(dirname "$0")
provider=${1:-docker}

mf_secrets
"$here/wheels.sh"

# SSH: one key for the farm, put in root's authorized_keys (a read-only mount in the containers,
# a shell provisioner in the virtual machines); the nodes share the image's host keys, so
# known_hosts is not kept.  The client configuration is the inventory's and testinfra's.
mkdir -p "$MF_SSH"
chmod 0700 "$MF_SSH"
[ -s "$MF_SSH/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C ft-mockfarm -f "$MF_SSH/id_ed25519"
cp "$MF_SSH/id_ed25519.pub" "$MF_SSH/authorized_keys"
chmod 0600 "$MF_SSH/authorized_keys"
{
  echo "# Made by scripts/mockfarm/host.sh: ssh -F $MF_SSH/config <node>"
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
# The production home is shared by the event builders, the head and the workers, as a farm's
# home is (NFS): batch jobs write their logs and status files where the manager reads them.
# The storage node keeps its own.  down.sh removes it with the nodes (it is farm state).
mkdir -p "$MF_DIR/home-prod"

[ "$provider" = docker ] || exit 0
mf_host_fixes
"$here/image.sh"
"$here/repo.sh"
if ! podman network exists "$MF_NETWORK"; then
  mf_log "creating the internal network $MF_NETWORK ($MF_SUBNET)"
  podman network create --internal --subnet "$MF_SUBNET" "$MF_NETWORK" >/dev/null
fi
# The host's address on the network's bridge (no gateway, no NAT: the nodes still have no route
# off the machine), made before any node starts: Vagrant waits for each node's SSH server as it
# brings it up.  The CNI bridge plugin takes an existing bridge as it is.
bridge=$(podman network inspect "$MF_NETWORK" --format '{{.NetworkInterface}}')
ip link show dev "$bridge" >/dev/null 2>&1 || ip link add name "$bridge" type bridge
ip link set dev "$bridge" up
if ! ip -o addr show dev "$bridge" | grep -q " $MF_HOST_IP/"; then
  ip addr add "$MF_HOST_IP/${MF_SUBNET#*/}" dev "$bridge"
fi
