# shellcheck shell=bash
# Common settings of the mock farm scripts (sourced, not run).  Everything the mock farm creates
# on the host is named with the ft- prefix (containers, network, image) or lives under .mockfarm/
# (gitignored), so that `down.sh` removes exactly what `up.sh` made and nothing else.
set -euo pipefail

MF_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MF_DIR=${MOCKFARM_DIR:-$MF_ROOT/.mockfarm}
MF_PREFIX=ft-
MF_NETWORK=${MF_PREFIX}farm
MF_SUBNET=${MOCKFARM_SUBNET:-10.89.105.0/24}
MF_IMAGE=localhost/${MF_PREFIX}node:bookworm
# Podman here uses the CNI backend without a DNS plugin: nodes get fixed addresses and know each
# other through /etc/hosts entries (--add-host); the inventory uses the same names.  The table is
# shared with the Vagrantfile (scripts/mockfarm/nodes.txt).
MF_NODES=()
declare -A MF_ADDR=()
while read -r _name _byte _; do
  MF_NODES+=("$_name")
  MF_ADDR[$_name]=$_byte
done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$MF_ROOT/scripts/mockfarm/nodes.txt")
mf_ip() { echo "${MF_SUBNET%.*}.${MF_ADDR[$1]}"; }
# The host's own address on the internal network (on the bridge, no gateway, no NAT): Ansible and
# testinfra reach the nodes over SSH from here; the nodes still have no route off the machine.
MF_HOST_IP=${MF_SUBNET%.*}.1
# SSH key, client configuration and connection sockets of the mock farm (made by up.sh).
MF_SSH=$MF_DIR/ssh
MF_SUITE=bookworm
MF_MIRROR=${MOCKFARM_MIRROR:-http://deb.debian.org/debian}
MF_SECURITY=${MOCKFARM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# Podman on these machines needs cgroupfs and explicit ulimits (no CAP_SYS_RESOURCE); Ansible and
# testinfra call podman too, so the caller exports the same CONTAINERS_CONF (see docs/deployment.md).
export CONTAINERS_CONF=$MF_DIR/containers.conf

mf_log() { printf '[mockfarm] %s\n' "$*" >&2; }

# The container configuration and the cgroup v1 mounts crun needs here (real-services.md).
mf_host_fixes() {
  mkdir -p "$MF_DIR"
  if [ ! -f "$CONTAINERS_CONF" ]; then
    cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
CONF
  fi
  local unified=/sys/fs/cgroup/unified/cgroup.controllers c
  if [ -r "$unified" ]; then
    for c in $(cat "$unified"); do
      if ! mountpoint -q "/sys/fs/cgroup/$c"; then
        mf_log "mounting cgroup v1 controller $c (crun refuses hybrid mode otherwise)"
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
      fi
    done
  fi
}

# One random value per secret of the mock farm, made once into .mockfarm/secrets.env (gitignored)
# and kept (the database and the page's shift login); exported for Ansible's env lookups.
mf_secrets() {
  local secrets=$MF_DIR/secrets.env key
  mkdir -p "$MF_DIR"
  (
    umask 077
    touch "$secrets"
    for key in FARMTOOLS_DB_PASSWORD FARMTOOLS_MONITOR_PASSWORD; do
      grep -q "^$key=" "$secrets" ||
        printf '%s=%s\n' "$key" "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> "$secrets"
    done
  )
  set -a
  # shellcheck source=/dev/null
  source "$secrets"
  set +a
}
