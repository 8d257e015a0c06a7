#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, end-to-end; all of
# them, a failure does not stop the rest) and ends
# with one summary line: "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release --workspace --no-fail-fast --lib --bins --tests -- --test-threads=1 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# A bounded smoke of every fuzz target (seconds each): scripts/fuzz.sh.
bash scripts/fuzz.sh smoke 2>&1 | tee -a "$log"
fuzz_status=${PIPESTATUS[0]}
[ "$fuzz_status" -eq 0 ] || status=1
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + $(grep -Eo '^fuzz: [0-9]+ passed' "$log" | awk '{s+=$2} END {print s+0}')))
failed=$((failed + $(grep -Eo '^fuzz: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$4} END {print s+0}')))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "tests: $passed passed, $failed failed"
exit "$status"
