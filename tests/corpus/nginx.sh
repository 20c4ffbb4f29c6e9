#!/bin/bash
# nginx.sh — nginx in one process (daemon off; master_process off): its own epoll
# event loop, and a thread pool that reads static files (aio threads; the pool's
# threads hand results back to the loop through an eventfd). Under `greenrun
# --threads` it serves a file through the pool and proxies 8 concurrent requests to
# the delay server in about one answer's time; SIGTERM (fast shutdown) ends it with
# exit 0 and no error output. curl, on real threads, is the client.
. "$(dirname "$0")/lib.sh"
need nginx curl
start_delay
PIN="epoll_wait"  # what pinned the hub before the epoll wrappers (Dec 2026): if it ever fails again, the detector must name it
N=$T/nginx
mkdir -p "$N/html/files"
seq 1 20000 >"$N/html/files/numbers.txt"  # 106 KB: several reads by the pool
file="file: $(cksum <"$N/html/files/numbers.txt")"

# load MODE C: nginx serves the file and C concurrent proxied requests, then gets SIGTERM
load() {
    local mode=$1 c=$2 port t0
    port=$(free_port)
    cat >"$N/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
error_log stderr warn; pid $N/nginx.pid;
events { worker_connections $((4 * c + 64)); }
http {
  access_log off; sendfile off;
  client_body_temp_path $N/b; proxy_temp_path $N/p; fastcgi_temp_path $N/f;
  uwsgi_temp_path $N/u; scgi_temp_path $N/s;
  server {
    listen 127.0.0.1:$port; root $N/html;
    location /files/ { aio threads; }
    location /delay/ { proxy_pass $U; }
  }
}
EOF
    # its log on stderr: a log file would become its stderr (and take the monitor's reports)
    launch "$mode" "nginx$c" nginx -p "$N" -e stderr -c "$N/nginx.conf"
    drive=$T/nginx$c.$mode.drive
    : >"$drive"
    dms=0
    if wait_port "$port"; then
        if curl -sS --max-time 3 -o "$N/got" "http://127.0.0.1:$port/files/numbers.txt" 2>"$N/got.err"; then
            echo "file: $(cksum <"$N/got")" >>"$drive"
        else
            echo "file: $(cat "$N/got.err")" >>"$drive"
        fi
        t0=$EPOCHREALTIME
        curl -sS --no-progress-meter --max-time "$TMO" -Z --parallel-immediate --parallel-max "$c" \
            "http://127.0.0.1:$port/delay/$LAT/[1-$c]" 2>&1 | sort >>"$drive"
        dms=$(ms_since "$t0") bwall=$(secs "$dms")
    fi
    [ "$(grep -c "^hello /delay/$LAT/" "$drive")" = "$c" ]
    proxied=$?
    grep -qx "$file" "$drive" && [ $proxied = 0 ]
    ok=$?
    signal 0.2 TERM
    reap "$mode" "nginx$c"
}
bench_rows load 8

for mode in real green; do
    load $mode 8
    grep -qx "$file" "$drive"
    check $mode "a file read by the pool" $? "" "$drive" "$err"
    [ $proxied = 0 ]
    check $mode "8 requests proxied" $? "" "$drive"
    conc $mode 8 "$dms" $proxied
done
same nginx8 "answers" cat drive
stopped nginx8 "SIGTERM after serving" 0
corpus_end
