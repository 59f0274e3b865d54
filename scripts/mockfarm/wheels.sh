#!/usr/bin/env bash
# The wheelhouse of the mock farm: farmtools (built from this work tree every time, as its code
# changes) and its dependencies (cached until pyproject.toml changes), mounted read-only into the
# nodes at /srv/ft-wheels, where the farmtools role installs with `pip --no-index --find-links`.
source "$(dirname "$0")/env.sh"
# Reproducible wheel (fixed timestamps in the zip): an unchanged work tree gives the same
# checksum, so the farmtools role reinstalls only when the code changed.
export SOURCE_DATE_EPOCH=315532800

wheels=$MF_DIR/wheels
pip=$MF_ROOT/.venv/bin/pip
mkdir -p "$wheels"
want=$(sha256sum "$MF_ROOT/pyproject.toml" | cut -d' ' -f1)
if [ ! -f "$wheels/.stamp" ] || [ "$(cat "$wheels/.stamp")" != "$want" ]; then
  mf_log "collecting the wheels of farmtools' dependencies (pip cache first)"
  "$pip" wheel --quiet --wheel-dir "$wheels" "$MF_ROOT" pip setuptools wheel 2>&1 | grep -v '^WARNING: Location' >&2 || true
  echo "$want" > "$wheels/.stamp"
fi
find "$wheels" -maxdepth 1 -name 'farmtools-*.whl' -delete
"$pip" wheel --quiet --no-deps --wheel-dir "$wheels" "$MF_ROOT" 2>&1 | grep -v '^WARNING: Location' >&2 || true
ls "$wheels"/farmtools-*.whl >/dev/null
mf_log "wheelhouse: $(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$wheels" | cut -f1)"
