#!/usr/bin/env bash
# stress.sh BUILD ROUNDS [TEST...] — the suite's tests that cross OS threads (hubs,
# calls and objects shared between them), each run ROUNDS times two at once beside a
# process that spins on a CPU, so that the scheduler preempts hubs at any instruction:
# races whose window is a few stores show up in minutes here, where a plain `ctest`
# meets them once in hundreds of runs. Prints the failures per test and keeps each
# failed run's output (STRESS_LOGS, default /tmp/green-stress); exit 1 if any failed.
# `make stress` (docs/testing.md). Not a test of timings: nothing here is timed.
set -u
build=${1:?usage: stress.sh BUILD ROUNDS [TEST...]}
rounds=${2:?usage: stress.sh BUILD ROUNDS [TEST...]}
shift 2
tests=("$@")
# the default: every ctest test of the hub label (calls and objects across hubs, hubs
# that steal, the group) and the patch's threads
if ((${#tests[@]} == 0)); then
    mapfile -t tests < <(cd "$build" && ctest -N -L hub | sed -n 's/^ *Test *#[0-9]*: //p')
    tests+=(patch_threads chaos_hubs)
fi
logs=${STRESS_LOGS:-/tmp/green-stress}
mkdir -p "$logs"
cd "$build" || exit 2

sh -c 'while :; do :; done' &
hog=$!
trap 'kill $hog 2>/dev/null' EXIT

failed=0
for t in "${tests[@]}"; do
    f=0
    for ((i = 1; i <= rounds; i++)); do
        pids=()
        for k in a b; do
            ctest -R "^$t\$" --no-tests=error --timeout 600 --output-on-failure >"$logs/$t.$k.log" 2>&1 &
            pids+=($!)
        done
        for k in a b; do
            if ! wait "${pids[0]}"; then
                f=$((f + 1))
                mv "$logs/$t.$k.log" "$logs/$t.failed.$i.$k.log"
            fi
            pids=("${pids[@]:1}")
        done
    done
    rm -f "$logs/$t.a.log" "$logs/$t.b.log"
    echo "$t: $f of $((2 * rounds)) runs failed"
    ((f == 0)) || failed=1
done
((failed == 0)) || echo "the failed runs' output: $logs/*.failed.*"
exit $failed
