#!/bin/sh
# The time-based simulation benchmark of docs/BENCHMARKS.md: generates
# 1,000,000 jobs for the 10,000-node fleet of testdata/sim/fleet-10k.yaml
# and replays them through the scheduling core with a cycle a virtual
# minute, printing wall time, CPU time and peak memory of each step (GNU
# time), then the run's summary.
#
# Usage: scripts/sim-1m.sh [JOBS [SIM-RUN-FLAGS...]]
#   (default 1000000 jobs; needs /usr/bin/time). With flags, the replay is
#   run twice on the same trace, without and with them, e.g.
#   scripts/sim-1m.sh 1000000 --account   (the cost of accounting)
# The trace (about 330 MB) goes to $TMPDIR and is removed at the end.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=${1:-1000000}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/gpufleet" ./cmd/gpufleet
measure() {
	/usr/bin/time -f '%e s wall, %U s user, %M KiB peak RSS' "$@"
}
echo "sim gen --jobs $jobs:"
measure "$tmp/gpufleet" sim gen --jobs "$jobs" --tenants 8 --seed 1 \
	--fleet testdata/sim/fleet-10k.yaml -o "$tmp/trace.jsonl"
echo "sim run:"
measure "$tmp/gpufleet" sim run --trace "$tmp/trace.jsonl" \
	--fleet testdata/sim/fleet-10k.yaml --cycle 60 --quiet >"$tmp/summary.txt"
cat "$tmp/summary.txt"
if [ $# -gt 0 ]; then
	echo "sim run $*:"
	measure "$tmp/gpufleet" sim run --trace "$tmp/trace.jsonl" \
		--fleet testdata/sim/fleet-10k.yaml --cycle 60 --quiet "$@" >"$tmp/summary2.txt"
	cat "$tmp/summary2.txt"
fi
