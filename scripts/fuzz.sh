#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ with cargo-fuzz (nightly).
#   scripts/fuzz.sh smoke            each target for a few seconds (make test)
#   scripts/fuzz.sh long [RUNS]      each target for RUNS executions (default
#                                    10 million), then its coverage
# Prints "fuzz: N passed, N failed" and exits non-zero if a target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
mode="${1:-smoke}"
runs="${2:-10000000}"
targets=(msg_decode layout desc_check ring_consumers proxy_guest_region)
cd fuzz
if ! cargo +nightly fuzz build -O >/dev/null 2>&1; then
    # One build for all targets; show why it failed.
    cargo +nightly fuzz build -O 2>&1 | tail -20
    echo "fuzz: 0 passed, ${#targets[@]} failed"
    exit 1
fi
passed=0 failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ "$mode" = smoke ]; then
        args=(-runs=2000000 -max_total_time=8)
    else
        args=(-runs="$runs")
    fi
    log="$(mktemp)"
    if cargo +nightly fuzz run -O "$t" "corpus/$t" -- "${args[@]}" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "fuzz $t: ok, $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1), $(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)"
    else
        failed=$((failed + 1))
        echo "fuzz $t: FAILED"
        tail -40 "$log"
    fi
    rm -f "$log"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
