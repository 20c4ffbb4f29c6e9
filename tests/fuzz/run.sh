#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS [NAME...] — make fuzz: each libFuzzer harness of tests/fuzz/
# (built in BUILD_DIR with -DGREEN_FUZZ=ON) runs for SECONDS on its committed corpus.
# What it finds new goes to BUILD_DIR/fuzz-corpus/NAME (merge the useful inputs into
# tests/fuzz/corpus/NAME by hand: `fuzz_NAME -merge=1 tests/fuzz/corpus/NAME DIR`); a
# crash leaves its input in BUILD_DIR/fuzz-crash-NAME-* and fails the run.
set -uo pipefail
build=$1 seconds=$2
shift 2
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
names=("$@")
if (( ${#names[@]} == 0 )); then
    for f in "$src"/fuzz_*.c; do
        n=$(basename "$f" .c); n=${n#fuzz_}
        [[ $n == main ]] || names+=("$n")
    done
fi
fail=0
for n in "${names[@]}"; do
    bin=$build/tests/fuzz_$n
    [[ -x $bin ]] || { echo "run.sh: $bin is missing (make fuzz builds it)"; fail=1; continue; }
    mkdir -p "$build/fuzz-corpus/$n"
    echo "== fuzz_$n: ${seconds}s"
    if ! "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/fuzz-crash-$n-" \
         "$build/fuzz-corpus/$n" "$src/corpus/$n" 2>"$build/fuzz-$n.log"; then
        echo "fuzz_$n: FOUND A FAILURE (see $build/fuzz-$n.log and $build/fuzz-crash-$n-*)"
        grep -E "^fuzz_|ERROR|SUMMARY" "$build/fuzz-$n.log" | head -5
        fail=1
    else
        grep -E "Done [0-9]+ runs" "$build/fuzz-$n.log" | tail -1
    fi
done
exit $fail
