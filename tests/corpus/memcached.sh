#!/bin/bash
# memcached.sh — memcached -t 4, a threaded libevent server: the main thread accepts
# and hands each connection to one of 4 worker threads, each in its own epoll_wait()
# loop. Under `greenrun --threads` it stores and returns a value; with 8 connections
# each holding half a command (spread over the workers) another connection is still
# served, and then the 8 are answered too; SIGTERM ends it with exit 0 and no error
# output. The client is this script (bash's /dev/tcp), on real threads.
. "$(dirname "$0")/lib.sh"
need memcached
PIN="epoll_wait"  # what pinned the hub before the epoll wrappers (Dec 2026): if it ever fails again, the detector must name it

# say FD TEXT: send TEXT (with \r\n escapes) on connection FD
say() { { printf '%b' "$2" >&"$1"; } 2>/dev/null; }
# hear FD N: N reply lines from connection FD, \r dropped, on one line; gives up (and
# every later hear too) once DEADLINE (an $EPOCHSECONDS) has passed
hear() {
    local fd=$1 n=$2 line got=""
    while ((n-- > 0)); do
        ((EPOCHSECONDS < DEADLINE)) && IFS= read -r -t $((DEADLINE - EPOCHSECONDS)) -u "$fd" line ||
            { echo "$got(no answer)"; return 1; }
        got="$got${line%$'\r'} "
    done
    echo "$got"
}

# session PORT C: the client's side; its transcript on stdout
session() {
    local port=$1 c=$2 main fd i
    local -a fds
    DEADLINE=$((EPOCHSECONDS + 5))
    exec {main}<>"/dev/tcp/127.0.0.1/$port" || return 1
    say "$main" 'set corpus 0 0 12\r\ncorpus-value\r\n'
    echo "set: $(hear "$main" 1)"
    for ((i = 0; i < c; i++)); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
        fds[i]=$fd
        say "$fd" 'get corp'
    done
    say "$main" 'get corpus\r\n'
    echo "get while $c wait: $(hear "$main" 3)"
    for fd in "${fds[@]}"; do say "$fd" 'us\r\n'; done
    for ((i = 0; i < c; i++)); do echo "get $i: $(hear "${fds[i]}" 3)"; done
    for fd in "${fds[@]}" "$main"; do exec {fd}>&-; done
}

# load MODE C: memcached with C/2 worker threads serves the session with C connections
# waiting, then gets SIGTERM
load() {
    local mode=$1 c=$2 port t0 user=()
    port=$(free_port)
    [ "$(id -u)" = 0 ] && user=(-u nobody)
    launch "$mode" "mc$c" memcached "${user[@]}" -l 127.0.0.1 -p "$port" -t $((c / 2)) -U 0
    drive=$T/mc$c.$mode.drive
    : >"$drive"
    dms=0
    if wait_port "$port"; then
        t0=$EPOCHREALTIME
        session "$port" "$c" >"$drive" 2>&1
        dms=$(ms_since "$t0") bwall=$(secs "$dms")
    fi
    # every get answered with the value
    [ "$(grep -c 'VALUE corpus 0 12 corpus-value END' "$drive")" = $((c + 1)) ]
    ok=$?
    signal 0.2 TERM
    reap "$mode" "mc$c"
}
bench_rows load 8

for mode in real green; do
    load $mode 8
    grep -q '^get while 8 wait: VALUE corpus 0 12 corpus-value END' "$drive"
    check $mode "served while 8 wait" $? "" "$drive" "$err"
    [ $ok = 0 ]
    check $mode "the 8 answered then" $? "" "$drive"
done
same mc8 "transcript" cat drive
stopped mc8 "SIGTERM after serving" 0
corpus_end
