#!/bin/bash
# tinyproxy.sh — tinyproxy, a threaded HTTP proxy server: a thread per client connection
# (blocking reads and writes), the main thread in a poll() loop that a SIGTERM handler
# ends by setting a flag. Under `greenrun --threads` it proxies 8 concurrent requests
# to the delay server (curl -Z drives it, on real threads) in about one answer's time,
# then SIGTERM ends it with exit 0 and no error output.
. "$(dirname "$0")/lib.sh"
need tinyproxy curl
start_delay
PIN=""  # it hung after SIGTERM without pinning (poll() was not interrupted) before handlers interrupted calls

# load MODE C: tinyproxy serves C concurrent requests, then gets SIGTERM
load() {
    local mode=$1 c=$2 port t0
    dms=0
    port=$(free_port)
    {
        echo "Port $port"
        echo "Listen 127.0.0.1"
        echo "Timeout 30"
        echo "MaxClients $((c + 10))"
        echo "LogLevel Warning"
        echo "Allow 127.0.0.1"
        [ "$(id -u)" = 0 ] && printf 'User nobody\nGroup nogroup\n'
    } >"$T/tinyproxy.conf"
    launch "$mode" "proxy$c" tinyproxy -d -c "$T/tinyproxy.conf"
    ok=1
    : >"$T/proxy$c.$mode.drive"
    if wait_port "$port"; then
        t0=$EPOCHREALTIME
        curl -sS --no-progress-meter --max-time "$TMO" -x "http://127.0.0.1:$port" -Z --parallel-immediate \
            --parallel-max "$c" "$U/delay/$LAT/[1-$c]" 2>&1 | sort >"$T/proxy$c.$mode.drive"
        dms=$(ms_since "$t0") bwall=$(secs "$dms")
        [ "$(grep -c "^hello /delay/$LAT/" "$T/proxy$c.$mode.drive")" = "$c" ]
        ok=$?
    fi
    signal 0.2 TERM
    reap "$mode" "proxy$c"
}
bench_rows load 8

for mode in real green; do
    load $mode 8
    drive=$T/proxy8.$mode.drive
    [ $ok = 0 ]
    check $mode "8 requests proxied" $? "" "$drive" "$err"
    conc $mode 8 "$dms" $ok
done
same proxy8 "proxied answers" cat drive
stopped proxy8 "SIGTERM after serving" 0
corpus_end
