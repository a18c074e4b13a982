#!/bin/sh
# Replays the fill experiment of "Beware of Fragmentation" (Weng et al.,
# USENIX ATC '23) on every openb workload the paper published results for:
# the six paper policies and sfgd, seeds 42-51, and writes the comparison
# with the paper's means into docs/FRAGMENTATION.md, between the
# "fidelity:begin" and "fidelity:end" markers.
#
# Usage: scripts/fgd-fidelity.sh [TRACE_CSV_DIR]
# TRACE_CSV_DIR defaults to ../shared/traces/alibaba-gpu-v2023-openb/csv
# (relative to the repository root); fgd-expected/ must lie beside it.
# Runs two fills at a time (GPUFLEET_FIDELITY_PARALLEL, at most 2); about
# five minutes on two cores. The run's log goes to $GPUFLEET_FIDELITY_LOG,
# by default fgd-fidelity.log in the temporary directory.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
trace=${1:-../shared/traces/alibaba-gpu-v2023-openb/csv}
trace=$(cd "$trace" && pwd)
table=$(mktemp)
trap 'rm -f "$table"' EXIT
log=${GPUFLEET_FIDELITY_LOG:-${TMPDIR:-/tmp}/fgd-fidelity.log}

status=0
GPUFLEET_OPENB="$trace" GPUFLEET_FIDELITY="$table" GPUFLEET_FIDELITY_PARALLEL=${GPUFLEET_FIDELITY_PARALLEL:-2} \
	go test -run '^TestFillFidelity$' -v -count=1 -timeout 2h ./internal/sim >"$log" 2>&1 || status=$?
if [ ! -s "$table" ]; then
	echo "fgd-fidelity: no table written; see $log" >&2
	exit 1
fi

doc=docs/FRAGMENTATION.md
awk -v table="$table" -v date="$(date -u +%Y-%m-%d)" '
	/<!-- fidelity:begin -->/ {
		print
		print ""
		print "Produced by `scripts/fgd-fidelity.sh` on " date "."
		print ""
		while ((getline line < table) > 0) print line
		print ""
		skip = 1
		next
	}
	/<!-- fidelity:end -->/ { skip = 0 }
	!skip
' "$doc" >"$doc.new"
mv "$doc.new" "$doc"
echo "fgd-fidelity: table written to $doc (test status $status; log in $log)"
exit $status
