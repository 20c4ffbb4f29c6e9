#!/bin/bash
# curl.sh — curl -Z: libcurl's multi interface, one thread in poll. (Its threaded
# resolver makes no thread here: curl answers "localhost" itself — Debian 12's 7.88
# does; strace -f shows no clone — so the program runs on one thread throughout.) Under
# `greenrun --threads`, 8 URLs of the delay server are fetched in parallel, in about one
# answer's time; SIGINT kills it as it kills it on real threads (exit 130).
. "$(dirname "$0")/lib.sh"
need curl
start_delay
CURL=(curl -sS --no-progress-meter -Z --parallel-immediate)

# load MODE C: C URLs at once (by name, which curl resolves itself)
load() {
    run "$1" "curl$2" "${CURL[@]}" --parallel-max "$2" "http://localhost:$DELAY_PORT/delay/$LAT/[1-$2]"
    [ "$(grep -c "^hello /delay/$LAT/" "$out")" = "$2" ]
    ok=$?
}
bench_rows load 8

for mode in real green; do
    load $mode 8
    check $mode "8 answers" $ok "" "$out" "$err"
    conc $mode 8 "$(wall_ms)" $ok

    interrupt $mode int 1 INT "${CURL[@]}" "http://localhost:$DELAY_PORT/delay/30000/[1-4]"
done
same curl8 "answers (in any order)" sort
stopped int "SIGINT at 1 s" 130
corpus_end
