#!/usr/bin/env bash
# The node image of the mock farm: a minimal Debian 12 with systemd and an SSH server
# (mmdebstrap), imported into podman as ft-node.  Ansible and testinfra reach the nodes over SSH
# (pipelining, ControlPersist), several times faster than `podman exec` per task.  Its apt
# sources point at the local repository mounted at /srv/ft-repo, as the nodes have no registry
# access.  Cached in .mockfarm/node.tar, rebuilt only when this script changes.
source "$(dirname "$0")/env.sh"
mf_host_fixes

tar_file=$MF_DIR/node.tar
want=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
if [ ! -s "$tar_file" ] || [ "$(cat "$tar_file.stamp" 2>/dev/null)" != "$want" ]; then
  mf_log "building the node image with mmdebstrap (about 30 s)"
  mmdebstrap --quiet --variant=minbase --format=tar \
    --include=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,procps,sudo,openssh-server,ca-certificates,locales \
    --customize-hook='echo "deb [trusted=yes] file:/srv/ft-repo ./" > "$1/etc/apt/sources.list"' \
    --customize-hook='rm -f "$1"/etc/apt/sources.list.d/*' \
    --customize-hook='printf "C.UTF-8 UTF-8\n" > "$1/etc/locale.gen"' \
    --customize-hook='printf "UseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n" > "$1/etc/ssh/sshd_config.d/mockfarm.conf"' \
    --customize-hook='systemctl --root="$1" mask systemd-logind.service getty.target console-getty.service systemd-udevd.service systemd-resolved.service 2>/dev/null || true' \
    "$MF_SUITE" "$tar_file.tmp" "$MF_MIRROR"
  mv "$tar_file.tmp" "$tar_file"
  echo "$want" > "$tar_file.stamp"
  podman image rm --force "$MF_IMAGE" >/dev/null 2>&1 || true
fi
if ! podman image exists "$MF_IMAGE"; then
  mf_log "importing $MF_IMAGE"
  podman import --quiet --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    "$tar_file" "$MF_IMAGE" >/dev/null
fi
