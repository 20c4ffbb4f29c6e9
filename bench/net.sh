# bench/net.sh — the network benchmarks of issue 5, sourced by bench/run.sh (sections F
# and G): it uses run.sh's helpers (row, header, kv, commas, fmt_bytes, run_point) and
# its variables (ROOT, BUILD, BIN, FULL, PY, PY_NOTE, PEERS_BIN).
#
#   F. examples/httpd under wrk (-t1, keep-alive, 100 and 1,000 connections) beside the
#      peers in bench/peers/: req/s, p99 latency, server CPU per request;
#   G. 10,000 idle keep-alive connections: bytes per connection from the server's RSS;
#      then examples/crawler against a server that delays every answer by 200 ms.
#
# Every data point is a fresh server process; the load (wrk, bench_idle_client, the
# crawlers) is a second process on loopback. Nothing is judged: figures and ratios only.
#
# Environment (besides run.sh's):
#   BENCH_FULL=1        wrk runs of 8 s, each point the median of 3 (default: one 4 s run)
#   BENCH_NET_DURATION  wrk's -d in seconds (default 4, 8 with BENCH_FULL=1)
#   BENCH_IDLE_N        idle connections (default 10000)
#   BENCH_CRAWL_N       URLs for the crawlers (default 10000)

NET_EX=$BUILD/examples
NET_D=${BENCH_NET_DURATION:-$( ((FULL == 1)) && echo 8 || echo 4)}
NET_REPS=1; ((FULL == 1)) && NET_REPS=3
IDLE_N=${BENCH_IDLE_N:-10000}
CRAWL_N=${BENCH_CRAWL_N:-10000}
NET_TMP=$(mktemp -d)
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- servers

# The servers: libgreen's two stack modes and the peers. net_have KEY says why one
# cannot run (empty: it can).
NET_KEYS=(green green-shared epoll goraw gonethttp gevent threads)
declare -A NET_LABEL=(
  [green]="libgreen \`examples/httpd\`, dedicated stacks"
  [green-shared]="libgreen \`examples/httpd --shared\`, shared stack"
  [epoll]="hand-written epoll, 1 thread (bench/peers/http_epoll.c)"
  [goraw]="Go raw net, goroutine per connection, GOMAXPROCS=1"
  [gonethttp]="Go net/http, GOMAXPROCS=1"
  [gevent]="gevent StreamServer"
  [threads]="thread per connection (bench/peers/http_threads.c, 256 KiB stacks)")
declare -A NET_WHY=()

net_setup() {
  local k
  [[ -x $NET_EX/httpd ]] || { NET_WHY[green]="not built (libhttp-parser-dev missing?)"; NET_WHY[green-shared]=${NET_WHY[green]}; }
  for k in epoll threads; do
    [[ -x $BIN/bench_http_$k ]] || NET_WHY[$k]="not built (libhttp-parser-dev missing?)"
  done
  if command -v go >/dev/null 2>&1; then
    mkdir -p "$PEERS_BIN"
    if [[ -z ${HOME:-} && -z ${GOCACHE:-} ]]; then export GOCACHE=$PEERS_BIN/go-cache GOPATH=$PEERS_BIN/gopath; fi
    for k in raw nethttp; do
      GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' go build -o "$PEERS_BIN/go_http_$k" "$ROOT/bench/peers/http_$k.go" \
        2>"$PEERS_BIN/build-http-$k.log" || NET_WHY[go$k]="Go build failed (see $PEERS_BIN/build-http-$k.log)"
    done
    NET_LABEL[goraw]="${NET_LABEL[goraw]} ($(go version | awk '{ print $3 }'))"
    NET_LABEL[gonethttp]="${NET_LABEL[gonethttp]} ($(go version | awk '{ print $3 }'))"
  else
    NET_WHY[goraw]="Go not installed (make bench-peers)"; NET_WHY[gonethttp]=${NET_WHY[goraw]}
  fi
  if [[ -n $PY ]]; then NET_LABEL[gevent]="${NET_LABEL[gevent]} ($PY_NOTE)"
  else NET_WHY[gevent]="gevent not installed (make bench-peers)"; fi
}

# net_port: a free TCP port below the ephemeral range
net_port() {
  local p used; used=$(ss -Htan 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 10000))
    grep -qx "$p" <<<"$used" || { echo "$p"; return; }
  done
  echo $((20000 + RANDOM % 10000))
}

# net_start KEY PORT: starts the server in the background; its pid in NET_PID
net_start() {
  local k=$1 port=$2 log=$NET_TMP/server.log
  case $k in
    green) "$NET_EX/httpd" "$port" >/dev/null 2>"$log" & ;;
    green-shared) "$NET_EX/httpd" --shared "$port" >/dev/null 2>"$log" & ;;
    green2) "$NET_EX/httpd" "$port" 2 >/dev/null 2>"$log" & ;;
    epoll) "$BIN/bench_http_epoll" "$port" >/dev/null 2>"$log" & ;;
    threads) "$BIN/bench_http_threads" "$port" >/dev/null 2>"$log" & ;;
    goraw) GOMAXPROCS=1 "$PEERS_BIN/go_http_raw" "$port" >/dev/null 2>"$log" & ;;
    gonethttp) GOMAXPROCS=1 "$PEERS_BIN/go_http_nethttp" "$port" >/dev/null 2>"$log" & ;;
    gevent) "$PY" "$ROOT/bench/peers/http_gevent.py" "$port" >/dev/null 2>"$log" & ;;
    delay) "$BIN/bench_delay_server" "$port" 200 >/dev/null 2>"$log" & ;;
  esac
  NET_PID=$!
  # up when it accepts a connection (10 s at most)
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$NET_PID" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

net_stop() {
  kill -TERM "$NET_PID" 2>/dev/null
  local i
  for i in $(seq 30); do kill -0 "$NET_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$NET_PID" 2>/dev/null
  wait "$NET_PID" 2>/dev/null
}

net_cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
net_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
net_fail() { echo "error=${1// /_}$(head -c 150 "$NET_TMP/server.log" 2>/dev/null | tr '\n ' '__' | sed 's/^./:&/')"; }

# ---------------------------------------------------------------- F: wrk

# wrk_point KEY CONNS [WRK_THREADS]: one fresh server under one wrk run -> key=value line
wrk_point() {
  local k=$1 c=$2 wt=${3:-1} port; port=$(net_port)
  net_start "$k" "$port" || { net_fail "did not start"; net_stop; return; }
  local t0; t0=$(net_cpu_ticks "$NET_PID")
  timeout $((NET_D + 30)) wrk -t"$wt" -c"$c" -d"${NET_D}s" --latency "http://127.0.0.1:$port/" >"$NET_TMP/wrk.out" 2>&1
  local t1; t1=$(net_cpu_ticks "$NET_PID")
  net_stop
  awk -v t0="$t0" -v t1="$t1" -v hz="$CLK_TCK" '
    function ms(s) { if (s ~ /us$/) return s / 1000; if (s ~ /ms$/) return s + 0; if (s ~ /m$/) return s * 60000; return s * 1000 }
    / requests in / { req = $1 }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "99%" { p99 = ms($2) }
    /Socket errors:/ { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
    /Non-2xx/ { bad = $NF }
    END {
      if (!req || t1 == "") { print "error=wrk_failed"; exit }
      printf "rps=%.0f p99_ms=%.3f cpu_us=%.2f requests=%d errors=%d\n", rps, p99, (t1 - t0) * 1e6 / hz / req, req, errs + bad
    }' "$NET_TMP/wrk.out"
}

# median of NET_REPS wrk_points
wrk_median() {
  local i
  for i in $(seq "$NET_REPS"); do wrk_point "$@"; done | awk '
    { for (i = 1; i <= NF; i++) { j = index($i, "="); k = substr($i, 1, j - 1); v = substr($i, j + 1)
        if (NR == 1) key[++nk] = k; val[k, NR] = v } }
    END {
      for (i = 1; i <= nk; i++) {
        k = key[i]; n = 0
        for (r = 1; r <= NR; r++) { v = val[k, r]; if (v !~ /^-?[0-9.]+$/) { n = -1; break } a[++n] = v + 0 }
        if (n < 0) { out = val[k, 1] } else {
          for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
          out = a[int((n + 1) / 2)]
        }
        printf "%s%s=%s", (i > 1 ? " " : ""), k, out
      }
      print ""
    }'
}

fmt_p99() { awk -v v="$1" 'BEGIN { if (v < 1) printf "%.0f µs", v * 1000; else if (v < 10) printf "%.2f ms", v; else printf "%.1f ms", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "—"; else printf "%.2f×", a / b }'; }

# Wait (up to 60 s) until the CPUs are at least 90% idle over a second: the sections
# before this one free gigabytes and leave the kernel reclaiming, which the first server
# measured would otherwise pay for. Prints how long it waited.
settle() {
  local t0=$SECONDS a b
  while (( SECONDS - t0 < 60 )); do
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
      n = split(a, x, " "); split(b, y, " "); t = 0
      for (i = 2; i <= n; i++) t += y[i] - x[i]
      exit !(t > 0 && (y[5] + y[6] - x[5] - x[6]) / t >= 0.9) }' && break
  done
  echo "$((SECONDS - t0))"
}

net_section_f() {
  local waited
  waited=$(settle)
  echo "## F. HTTP server under wrk (issue 5)"
  echo
  echo "(Waited ${waited} s for the CPUs to be 90% idle first.)"
  echo
  echo "\`wrk -t1 -c{100,1000} -d${NET_D}s --latency\` (Debian's wrk, keep-alive, GET /) against each"
  echo "server on 127.0.0.1, $( ((NET_REPS > 1)) && echo "median of $NET_REPS runs, " )each run a fresh server process. Every server"
  echo "answers with the same bytes as \`examples/httpd\` (net/http adds a Date header); the C"
  echo "ones parse with the same http-parser, Go raw net and gevent split requests at the blank"
  echo "line. Server CPU µs/request = (utime + stime of the server process, from /proc/PID/stat,"
  echo "after − before the wrk run) / requests answered. wrk runs on the same $(nproc) cores and is"
  echo "usually the bottleneck: req/s mostly measures how much CPU the server leaves to wrk, and"
  echo "CPU per request is the cleaner comparison. Ratios are against the epoll server in this run."
  echo
  header "server" "req/s @100" "p99 @100" "CPU µs/req @100" "req/s @1000" "p99 @1000" "CPU µs/req @1000" \
    "req/s ÷ epoll @100 / @1000" "CPU ÷ epoll @100 / @1000"
  declare -A W
  local k c l
  for k in "${NET_KEYS[@]}"; do
    [[ -n ${NET_WHY[$k]:-} ]] && continue
    for c in 100 1000; do W[$k,$c]=$(wrk_median "$k" "$c"); done
  done
  for k in "${NET_KEYS[@]}"; do
    if [[ -n ${NET_WHY[$k]:-} ]]; then row "${NET_LABEL[$k]}" "skipped: ${NET_WHY[$k]}" "" "" "" "" "" "" ""; continue; fi
    local cells=() rr=() cr=()
    for c in 100 1000; do
      l=${W[$k,$c]}
      if [[ -n $(kv "$l" error) ]]; then cells+=("**failed: $(kv "$l" error)**" "" ""); rr+=("—"); cr+=("—"); continue; fi
      local e; e=$(kv "$l" errors); e=${e:-0}
      cells+=("$(commas "$(kv "$l" rps)")$( ((e > 0)) && echo " ($(commas "$e") errors)")" "$(fmt_p99 "$(kv "$l" p99_ms)")" "$(kv "$l" cpu_us)")
      rr+=("$(ratio "$(kv "$l" rps)" "$(kv "${W[epoll,$c]:-}" rps)")")
      cr+=("$(ratio "$(kv "$l" cpu_us)" "$(kv "${W[epoll,$c]:-}" cpu_us)")")
    done
    row "${NET_LABEL[$k]}" "${cells[@]}" "${rr[0]} / ${rr[1]}" "${cr[0]} / ${cr[1]}"
  done
  echo
  echo "Issue 5's goals for httpd: ≥ 90% of the epoll server's req/s (ratio ≥ 0.90×) and ≤ 1.15× its"
  echo "CPU per request, ahead of every peer. The machine is shared: load average now $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  [[ -n ${NET_WHY[green]:-} ]] && return
  echo "### examples/httpd on 1 hub and on 2 hubs (issue 14)"
  echo
  echo "\`httpd PORT 2\` serves on two hubs (\`green_serve\` with \`threads = 2\`: a listener per hub with"
  echo "SO_REUSEPORT), under \`wrk -t2 -c100\` so that the load can use both; the 1-hub row under the"
  echo "same wrk. Issue 14's goal: CPU per request on 2 hubs ≤ 1.15× the 1-hub figure. wrk shares the"
  echo "$(nproc) cores, so req/s says little here; CPU per request is the figure."
  echo
  header "server" "req/s" "p99" "CPU µs/req" "CPU ÷ 1 hub"
  local one two
  one=$(wrk_median green 100 2)
  two=$(wrk_median green2 100 2)
  for k in green green2; do
    l=$one; [[ $k == green2 ]] && l=$two
    if [[ -n $(kv "$l" error) ]]; then row "$k" "**failed: $(kv "$l" error)**" "" "" ""; continue; fi
    row "$( [[ $k == green ]] && echo "libgreen \`examples/httpd\`, 1 hub" || echo "libgreen \`examples/httpd PORT 2\`, 2 hubs")" \
      "$(commas "$(kv "$l" rps)")" "$(fmt_p99 "$(kv "$l" p99_ms)")" "$(kv "$l" cpu_us)" "$(ratio "$(kv "$l" cpu_us)" "$(kv "$one" cpu_us)")"
  done
  echo
}

# ---------------------------------------------------------------- G: idle connections

# idle_point KEY: a fresh server, IDLE_N connections held idle by bench_idle_client
idle_point() {
  local k=$1 port; port=$(net_port)
  net_start "$k" "$port" || { net_fail "did not start"; net_stop; return; }
  sleep 0.5
  local r0; r0=$(net_rss_kb "$NET_PID")
  local fifo=$NET_TMP/hold out=$NET_TMP/idle.out
  rm -f "$fifo" "$out"; mkfifo "$fifo"
  "$BIN/bench_idle_client" 127.0.0.1 "$port" "$IDLE_N" <"$fifo" >"$out" 2>"$NET_TMP/client.log" &
  local cpid=$! hold i
  exec {hold}>"$fifo"
  for i in $(seq 1200); do [[ -s $out ]] && break; kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  sleep 1   # let the server settle (Go's and Python's collectors, the threads' exits)
  local r1; r1=$(net_rss_kb "$NET_PID")
  local line; line=$(cat "$out")
  exec {hold}>&-
  wait "$cpid" 2>/dev/null
  net_stop
  local n; n=$(kv "$line" connected)
  if [[ -z $n || $n -eq 0 || -z $r1 ]]; then net_fail "no connections $(head -c 100 "$NET_TMP/client.log")"; return; fi
  echo "connected=$n failed=$(kv "$line" failed) rss0_kb=$r0 rss1_kb=$r1 per_b=$(( (r1 - r0) * 1024 / n ))"
}

net_section_g() {
  echo "## G. Idle connections and the crawler (issue 5)"
  echo
  echo "### $(commas "$IDLE_N") idle keep-alive connections: server memory per connection"
  echo
  echo "\`bench_idle_client\` (a second process) opens $(commas "$IDLE_N") connections one after another, sends one"
  echo "request on each and reads its answer, then holds them all open and idle. Bytes per"
  echo "connection = (server VmRSS with all of them open, 1 s after the last − VmRSS before the"
  echo "first) / connections. User-space memory only: the kernel's socket buffers and a thread's"
  echo "kernel stack are not in VmRSS. Each row a fresh server process."
  echo
  header "server" "connections held" "VmRSS before" "VmRSS with them" "bytes per connection"
  local threads_now headroom
  threads_now=$(ps -eL --no-headers 2>/dev/null | wc -l)
  headroom=$(( $(sysctl_val kernel/pid_max) - threads_now ))
  if (( headroom < IDLE_N + 4096 )); then
    NET_WHY[threads]="${NET_WHY[threads]:-$(commas "$IDLE_N") threads would leave < 4,096 of kernel.pid_max free ($(commas "$threads_now") tasks now)}"
  fi
  local k l
  for k in "${NET_KEYS[@]}"; do
    if [[ -n ${NET_WHY[$k]:-} ]]; then row "${NET_LABEL[$k]}" "skipped: ${NET_WHY[$k]}" "" "" ""; continue; fi
    l=$(idle_point "$k")
    if [[ -n $(kv "$l" error) ]]; then row "${NET_LABEL[$k]}" "**failed: $(kv "$l" error)**" "" "" ""; continue; fi
    local f; f=$(kv "$l" failed); f=${f:-0}
    row "${NET_LABEL[$k]}" "$(commas "$(kv "$l" connected)")$( ((f > 0)) && echo " ($f failed)")" \
      "$(fmt_kib "$(kv "$l" rss0_kb)")" "$(fmt_kib "$(kv "$l" rss1_kb)")" "$(commas "$(kv "$l" per_b)") B"
  done
  echo
  echo "Issue 5's goals: ≤ 4.5 KiB (4,608 B) per connection with dedicated stacks, ≤ 1 KiB (1,024 B)"
  echo "with shared stacks. A dedicated stack costs at least the page its first frames touch"
  echo "(4,096 B); the rest is the green thread's control block, its stack descriptor, its group"
  echo "record and the hub's fd table. httpd holds no buffer while a connection idles."
  echo
}

# ---------------------------------------------------------------- G: the crawler

# crawl_point KEY: a fresh delay server, one crawler run over CRAWL_N URLs
crawl_point() {
  local k=$1 port; port=$(net_port)
  net_start delay "$port" || { net_fail "delay server did not start"; net_stop; return; }
  local urls=() i
  for ((i = 0; i < CRAWL_N; i++)); do urls+=("http://127.0.0.1:$port/page/$i"); done
  local t0=$EPOCHREALTIME out=$NET_TMP/crawl.out s0; s0=$(net_cpu_ticks "$NET_PID")
  local TIMEFORMAT='%U %S'   # the crawler's user and system CPU seconds, from bash's time
  { case $k in
    green) time timeout 300 "$NET_EX/crawler" -c "$CRAWL_N" "${urls[@]}" >"$out" 2>"$NET_TMP/crawl.err" ;;
    threads) time timeout 300 "$BIN/bench_crawler_pthreads" "${urls[@]}" >"$out" 2>"$NET_TMP/crawl.err" ;;
    gevent) time timeout 300 "$PY" "$ROOT/bench/peers/crawler_gevent.py" "${urls[@]}" >"$out" 2>"$NET_TMP/crawl.err" ;;
  esac; } 2>"$NET_TMP/crawl.time"
  local t1=$EPOCHREALTIME s1; s1=$(net_cpu_ticks "$NET_PID")
  net_stop
  local cpu; cpu=$(awk -v s0="$s0" -v s1="$s1" -v hz="$CLK_TCK" '{ printf "cuser_ms=%.0f csys_ms=%.0f server_ms=%.0f", $1 * 1000, $2 * 1000, (s1 - s0) * 1000 / hz }' "$NET_TMP/crawl.time")
  # "OK of N fetched in T ms"
  awk -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')" -v err="$(head -c 100 "$NET_TMP/crawl.err" | tr '\n ' '__')" -v cpu="$cpu" '
    $2 == "of" && $4 == "fetched" { printf "ok=%d n=%d ms=%d wall_ms=%d %s\n", $1, $3, $6, wall, cpu; found = 1 }
    END { if (!found) printf "error=no_result%s\n", (err != "" ? ":" err : "") }' <(tail -1 "$out")
}

net_section_crawl() {
  echo "### Crawler: $(commas "$CRAWL_N") URLs, all at once, each answer delayed 200 ms"
  echo
  echo "\`bench_delay_server\` (libgreen, a process of its own) answers every request 200 ms after"
  echo "reading it, then closes. Each crawler fetches $(commas "$CRAWL_N") URLs of it with $(commas "$CRAWL_N") concurrent green"
  echo "threads / OS threads / greenlets (one per URL, a new connection each, \`Connection: close\`)."
  echo "Time: from the first spawn to the last join, as the crawler itself reports it; process"
  echo "wall time (start-up, argument parsing, exit) in parentheses. Each row a fresh server and"
  echo "crawler. Issue 5's goal for libgreen: ≤ 1.5 × 200 ms = 300 ms."
  echo
  header "crawler" "fetched" "time" "× the 200 ms delay" "crawler CPU user + sys" "delay server CPU"
  local keys=(green threads gevent) k l
  declare -A CL=(
    [green]="libgreen \`examples/crawler -c $CRAWL_N\`, dedicated stacks"
    [threads]="OS threads, one per URL (bench/crawler_pthreads.c, 64 KiB stacks)"
    [gevent]="gevent, a greenlet per URL (bench/peers/crawler_gevent.py)")
  local why_c=""; [[ -x $BIN/bench_delay_server ]] || why_c="bench_delay_server not built (libhttp-parser-dev missing?)"
  for k in "${keys[@]}"; do
    local why=$why_c
    [[ -z $why && $k == green && ! -x $NET_EX/crawler ]] && why="not built (libhttp-parser-dev missing?)"
    [[ -z $why && $k == gevent && -z $PY ]] && why="gevent not installed (make bench-peers)"
    [[ -z $why && $k == threads && -n ${NET_WHY[threads]:-} && ${NET_WHY[threads]} == *pid_max* ]] && why=${NET_WHY[threads]}
    if [[ -n $why ]]; then row "${CL[$k]}" "skipped: $why" "" "" "" ""; continue; fi
    l=$(crawl_point "$k")
    if [[ -n $(kv "$l" error) ]]; then row "${CL[$k]}" "**failed: $(kv "$l" error)**" "" "" "" ""; continue; fi
    row "${CL[$k]}" "$(commas "$(kv "$l" ok)") of $(commas "$(kv "$l" n)")" \
      "$(fmt_ms "$(kv "$l" ms)") ($(fmt_ms "$(kv "$l" wall_ms)"))" \
      "$(awk -v m="$(kv "$l" ms)" 'BEGIN { printf "%.2f×", m / 200 }')" \
      "$(fmt_ms "$(kv "$l" cuser_ms)") + $(fmt_ms "$(kv "$l" csys_ms)")" "$(fmt_ms "$(kv "$l" server_ms)")"
  done
  echo
  echo "Beyond the 200 ms, the time is CPU: $(commas "$CRAWL_N") TCP connects, accepts and closes on loopback, on"
  echo "$(nproc) cores shared by the crawler and the server (and, here, by other work); the system CPU"
  echo "columns are the kernel's part of it."
  echo
}

# ---------------------------------------------------------------- run

if ! command -v wrk >/dev/null 2>&1; then
  echo "## F. HTTP server under wrk (issue 5)"; echo; echo "skipped: wrk is not installed (\`make bench\` installs it)"; echo
  net_setup
else
  net_setup
  net_section_f
fi
if [[ ! -x $BIN/bench_idle_client ]]; then
  echo "## G. Idle connections and the crawler (issue 5)"; echo; echo "skipped: bench_idle_client is not built"; echo
else
  if (( $(ulimit -Hn) < IDLE_N + 100 )); then
    echo "## G. Idle connections and the crawler (issue 5)"; echo
    echo "skipped: the open-files hard limit ($(ulimit -Hn)) is below $(commas "$IDLE_N") connections"; echo
  else
    ulimit -n "$(ulimit -Hn)"
    net_section_g
    net_section_crawl
  fi
fi
rm -rf "$NET_TMP"
