#!/usr/bin/env bash
# Runs every test of the workspace (unit, integration, end-to-end; all of
# them, a failure does not stop the rest) and ends
# with one summary line: "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Other DPDK releases (tests/dpdk_releases.rs): Debian 13's 24.11 and sid's
# 25.11 in root filesystems (cached in .roots/), the proxy built in each,
# and each release's C-vs-Rust layout test run there.
roots_status=0
for suite in trixie sid; do
    t0=$(date +%s)
    if bash scripts/build-root.sh "$suite" 2>&1 | tail -3 \
            && bash scripts/build-root.sh "$suite" test --release -p dpdk-sys --test layout 2>&1 \
               | tee -a "$log" | grep -E '^test |test result'; then
        echo "root $suite: proxy built, layout checked in $(( $(date +%s) - t0 )) s"
    else
        echo "root $suite: FAILED (see above)"; roots_status=1
    fi
done
cargo test --release --workspace --no-fail-fast --lib --bins --tests -- --test-threads=1 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
[ "$roots_status" -eq 0 ] || status=1
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
