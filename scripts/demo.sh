#!/usr/bin/env bash
# The README's `make demo` (for now): emulate a short run as the 3x1x1 DAQ wrote it, then check
# every file with the reader and print a summary.  The data challenge replaces this later.
set -euo pipefail
cd "$(dirname "$0")/.."
FT=.venv/bin/farmtools
OUT=${DEMO_DIR:-demo/evb/data}
RUN=${DEMO_RUN:-1}
mkdir -p "$OUT"

echo "== emulating run $RUN: 3 files of 10 events, one every 2 s, into $OUT"
"$FT" daq emulate --out "$OUT" --run "$RUN" --files 3 --events 10 --interval 2 \
  --lifetime-ms 7 --gain 20 --asymmetry 0 --seed 2016

mapfile -t files < <(ls -1v "$OUT"/run"$RUN"-seq*.dat | tail -n 3)
echo "== checking ${#files[@]} files with the reader"
"$FT" raw inspect "${files[@]}"

echo "== summary"
for f in "${files[@]}"; do
  truth="${f%.dat}.truth.json"
  .venv/bin/python - "$f" "$truth" <<'PY'
import json, os, sys
raw, truth = sys.argv[1], sys.argv[2]
doc = json.load(open(truth))
events = doc["events"]
tracks = [t for e in events for t in e["tracks"]]
crossers = sum(t["anode_cathode"] for t in tracks)
print(f"{os.path.basename(raw)}: {os.path.getsize(raw):,} bytes, {len(events)} events "
      f"(triggers {events[0]['trigger_number']}-{events[-1]['trigger_number']}), "
      f"{len(tracks)} muons of which {crossers} cross anode to cathode; "
      f"injected lifetime {doc['injected']['lifetime_ms']} ms, gain {doc['injected']['gain']}")
PY
done
echo "== demo done: files in $OUT"
