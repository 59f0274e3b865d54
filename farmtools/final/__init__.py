"""6x6x6 event filtering and final-storage files (docs/final.md).

classify (cheap class of every built event) -> filter (the policy of farm.toml ``[final]``:
keep, prescale, drop; counted per run) -> pack (kept events, Huffman-compressed, into
ProtoDUNE-DP files of a target size with a manifest and a log) -> transfer and verify (the
archive stage's machinery) -> deletable (raw files every event of which is accounted for).
"""
