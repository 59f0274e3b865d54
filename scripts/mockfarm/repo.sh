#!/usr/bin/env bash
# The local apt repository of the mock farm: every package of node-packages.txt with the
# dependencies the node image lacks, downloaded on the host (the nodes have no registry access)
# against the image's own dpkg status, indexed with dpkg-scanpackages and mounted read-only into
# the nodes at /srv/ft-repo.  Rebuilt only when node-packages.txt or the image changed.
source "$(dirname "$0")/env.sh"

repo=$MF_DIR/repo
apt_dir=$MF_DIR/apt
want=$(cat "$MF_ROOT/scripts/mockfarm/node-packages.txt" "$MF_DIR/node.tar.stamp" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$repo/.stamp" ] && [ "$(cat "$repo/.stamp")" = "$want" ]; then
  exit 0
fi
mf_log "building the local apt repository (download on the host, index with dpkg-scanpackages)"
mkdir -p "$repo" "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/sources.list.d"
tar -xf "$MF_DIR/node.tar" -O ./var/lib/dpkg/status > "$apt_dir/status"
cat > "$apt_dir/sources.list" <<SRC
deb $MF_MIRROR $MF_SUITE main
deb $MF_MIRROR $MF_SUITE-updates main
deb $MF_SECURITY $MF_SUITE-security main
SRC
apt_opts=(
  -o "Dir::State::status=$apt_dir/status"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache::archives=$apt_dir/archives"
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  -o "APT::Install-Recommends=false" -o "Debug::NoLocking=true"
)
mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$MF_ROOT/scripts/mockfarm/node-packages.txt")
apt-get "${apt_opts[@]}" -qq update
DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -qq -y --download-only install "${pkgs[@]}" >/dev/null
find "$repo" -maxdepth 1 -name '*.deb' -delete
cp "$apt_dir"/archives/*.deb "$repo"/
(cd "$repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null > Packages)
echo "$want" > "$repo/.stamp"
mf_log "apt repository: $(find "$repo" -name '*.deb' | wc -l) packages, $(du -sh "$repo" | cut -f1)"
