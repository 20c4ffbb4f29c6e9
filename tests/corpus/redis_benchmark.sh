#!/bin/bash
# redis_benchmark.sh — redis-benchmark --threads 4 (jemalloc; four threads, each with its
# own ae event loop over epoll, whose sockets are nearly always ready) against a
# redis-server the test starts (on real threads: it is the server under load). Under
# `greenrun --threads` every request is answered (SET, then GET of 20 clients), and
# SIGINT ends a long run as on real threads.
. "$(dirname "$0")/lib.sh"
need redis-server redis-benchmark
RPORT=$(free_port)
mkdir -p "$T/redis" && own "$T/redis"
bg "${AS_USER[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$T/redis" >"$T/redis.log" 2>&1
wait_port "$RPORT" || die "redis-server did not start"
RB=(redis-benchmark -h 127.0.0.1 -p "$RPORT" --threads 4 -t set,get -q)

# load MODE C: C clients, 100 requests each of SET then GET; the two summary lines
load() {
    run "$1" "rb$2" "${RB[@]}" -c "$2" -n $(($2 * 100))
    # progress lines end in \r; the summaries are what is left after the last one
    tr '\r' '\n' <"$out" | grep -E '^(SET|GET): [0-9.]+ requests per second' >"$T/rb$2.$1.sum"
    [ "$(grep -c . "$T/rb$2.$1.sum")" = 2 ] && [ "$rc" = 0 ]
    ok=$?
}
bench_rows load 20

for mode in real green; do
    load $mode 20
    check $mode "SET and GET answered" $ok "$(tr '\n' ' ' <"$T/rb20.$mode.sum" | cut -c1-90)" "$out" "$err"

    interrupt $mode int 1 INT "${RB[@]}" -c 8 -n 100000000
done

stopped int "SIGINT at 1 s" 130
corpus_end
