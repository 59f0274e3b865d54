#!/usr/bin/env bash
# The README's `make demo`: a short mock data challenge through the whole chain on this machine
# (the embedded default: local storage, local batch, SQLite), then where the report and the
# monitoring page are.  8 compressed files x 50 events, one every 3 s: two analysis groups of 200
# events, enough for the lifetime (to ~8 %) and the gains to be compared with the injected truth
# in the report; about a minute here, and 3 GB of disk in $DEMO_HOME (raw files on the event
# builder and on the storage, archives, their copy at the central storage).
# Environment: DEMO_HOME (default demo/farm, emptied first), DEMO_ARGS (extra `challenge run`
# options, e.g. "--chaos" or "--files 12").
set -euo pipefail
cd "$(dirname "$0")/.."
FT=.venv/bin/farmtools
HOME_DIR=${DEMO_HOME:-demo/farm}

if [ -d "$HOME_DIR" ]; then
  # a challenge killed during a storage-outage fault can leave its read-only bind mount behind
  if mountpoint -q "$HOME_DIR/storage/input" 2>/dev/null; then umount -l "$HOME_DIR/storage/input"; fi
  rm -rf "$HOME_DIR"
fi

echo "== farmtools data challenge on the embedded default farm in $HOME_DIR"
status=0
# shellcheck disable=SC2086  # DEMO_ARGS is a list of options on purpose
"$FT" challenge run --home "$HOME_DIR" --files 8 --events 50 --interval 3 --compress --workers 2 \
  --timeout 600 ${DEMO_ARGS:-} || status=$?

report="$HOME_DIR/reports/latest.html"
echo
echo "== demo done (exit $status)"
if [ -e "$report" ]; then
  echo "report (HTML with plots): $(realpath "$report")"
  echo "report (JSON):            $(realpath "$HOME_DIR"/reports/challenge-run*.json | tail -n 1)"
fi
echo "monitoring page:          .venv/bin/farmtools monitor serve --config $HOME_DIR/farm.toml"
echo "                          then open http://127.0.0.1:$(sed -n 's/^port = //p' "$HOME_DIR/farm.toml" | head -n 1)"
echo "one file's story:         .venv/bin/farmtools story run1-seq0.dat --config $HOME_DIR/farm.toml"
exit "$status"
