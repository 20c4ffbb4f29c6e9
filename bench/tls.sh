# bench/tls.sh — section T of bench/run.sh (issue 15): TLS 1.3 handshakes per second per
# core (X25519 + ECDSA P-256, new and resumed sessions) and memory per idle TLS
# connection, libgreen's server (bench_tls serve) against Go's crypto/tls
# (bench/peers/tls_server.go, GOMAXPROCS=1) and `openssl s_server`. Sourced by run.sh
# (uses BIN, ROOT, PEERS_BIN); runnable alone: bash bench/tls.sh BUILD_DIR.
# The load is bench_tls load (CONC green threads, one process, on the other core): each
# connection is a full handshake, "ping"/"pong", close_notify. Per-core figures are
# handshakes per second of the server's own CPU time (/proc/PID/stat), so they hold
# while the client shares the machine. Everything is measured in this run; nothing is
# asserted.
if [[ -z ${BIN:-} ]]; then
  set -uo pipefail
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  BUILD=$(cd "${1:-build}" && pwd); BIN=$BUILD/bench; PEERS_BIN=$BUILD/bench-peers
fi
TLS_SECONDS=${BENCH_TLS_SECONDS:-4}
TLS_CONC=${BENCH_TLS_CONC:-8}
TLS_IDLE_N=${BENCH_TLS_IDLE_N:-2000}

tls_section() {
  local dir port pid k mode
  echo "## T. TLS: handshakes and idle connections (issue 15)"
  echo
  [[ -x $BIN/bench_tls ]] || { echo "skipped: bench_tls is not built"; echo; return; }
  command -v openssl >/dev/null 2>&1 || { echo "skipped: no openssl tool"; echo; return; }
  dir=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
  "$BIN/bench_tls" serve 0 "$dir/cert.pem" "$dir/key.pem" >/dev/null 2>&1 & # does it start at all?
  pid=$!; sleep 0.2
  if ! kill -0 $pid 2>/dev/null; then echo "skipped: bench_tls serve failed (built without OpenSSL?)"; echo; rm -rf "$dir"; return; fi
  kill $pid; wait $pid 2>/dev/null
  local go_ok=0
  if command -v go >/dev/null 2>&1; then
    mkdir -p "$PEERS_BIN"
    if [[ -z ${HOME:-} && -z ${GOCACHE:-} ]]; then export GOCACHE=$PEERS_BIN/go-cache GOPATH=$PEERS_BIN/gopath; fi
    GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' go build -o "$PEERS_BIN/go_tls_server" "$ROOT/bench/peers/tls_server.go" \
      2>"$PEERS_BIN/build-tls.log" && go_ok=1
  fi
  # tls_start KEY: a fresh server on a free port; sets port, pid
  tls_start() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    case $1 in
      green) "$BIN/bench_tls" serve "$port" "$dir/cert.pem" "$dir/key.pem" >/dev/null 2>&1 & ;;
      green-shared) "$BIN/bench_tls" serve "$port" "$dir/cert.pem" "$dir/key.pem" shared >/dev/null 2>&1 & ;;
      go) GOMAXPROCS=1 "$PEERS_BIN/go_tls_server" "$port" "$dir/cert.pem" "$dir/key.pem" >/dev/null 2>&1 & ;;
      openssl) openssl s_server -accept "127.0.0.1:$port" -cert "$dir/cert.pem" -key "$dir/key.pem" -rev -quiet \
                 </dev/null >/dev/null 2>&1 & ;;
    esac
    pid=$!
    for _ in $(seq 100); do
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
      sleep 0.05
    done
  }
  tls_stop() { kill $pid 2>/dev/null; wait $pid 2>/dev/null; }
  tls_kv() { sed -n "s/.*\b$2=\([-0-9]*\).*/\1/p" <<<"$1"; }
  declare -A HS CPU
  local keys=(green go openssl) out n ms cpu
  (( go_ok )) || keys=(green openssl)
  for k in "${keys[@]}"; do
    for mode in new resumed; do
      tls_start "$k"
      out=$("$BIN/bench_tls" load "$port" "$TLS_SECONDS" "$TLS_CONC" "$mode" "$dir/cert.pem" "$pid" 2>&1)
      tls_stop
      n=$(tls_kv "$out" handshakes); ms=$(tls_kv "$out" ms); cpu=$(tls_kv "$out" server_cpu_ms)
      HS[$k.$mode]=$(awk -v n="${n:-0}" -v ms="${ms:-1}" 'BEGIN { printf "%.0f", n * 1000 / ms }')
      CPU[$k.$mode]=$(awk -v n="${n:-0}" -v c="${cpu:-0}" 'BEGIN { printf "%.0f", n ? c * 1000 / n : 0 }')
    done
  done
  local label
  echo "TLS 1.3, X25519, ECDSA P-256 certificate; $TLS_CONC connections at a time from bench_tls load"
  echo "for ${TLS_SECONDS} s each; every server on one core (libgreen: one hub; Go: GOMAXPROCS=1;"
  echo "s_server is single-threaded). Handshakes/s: wall clock, client and server sharing the 2 cores;"
  echo "per core: handshakes per second of the server's own CPU time. Ratios are to libgreen's."
  echo
  echo "| server | new: handshakes/s | new: µs CPU each | new: per core | resumed: handshakes/s | resumed: µs CPU each | resumed: per core |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for k in "${keys[@]}"; do
    case $k in green) label="libgreen (green_serve TLS)";; go) label="Go crypto/tls ($(go version | awk '{print $3}'))";; openssl) label="openssl s_server ($(openssl version | awk '{print $2}'))";; esac
    local cells="" m
    for m in new resumed; do
      local c=${CPU[$k.$m]} pc ratio=""
      pc=$(awk -v c="$c" 'BEGIN { printf "%.0f", c ? 1e6 / c : 0 }')
      [[ $k != green && ${CPU[green.$m]} != 0 ]] && ratio=" ($(awk -v a="$c" -v b="${CPU[green.$m]}" 'BEGIN { printf "%.2f×", a / b }'))"
      cells="$cells | ${HS[$k.$m]} | $c$ratio | $pc"
    done
    echo "| $label$cells |"
  done
  echo
  # the crypto a full handshake cannot avoid, on the server: one ECDSA P-256 signature, an
  # X25519 key generation and its derivation (two X25519 operations)
  local speed floor
  speed=$(openssl speed -seconds 1 ecdsap256 ecdhx25519 2>/dev/null)
  floor=$(awk '/ecdsa \(nistp256\)/ { s = $(NF-1) } /ecdh \(X25519\)/ { x = $NF }
               END { if (s && x) printf "%.0f", 1e6 / s + 2e6 / x }' <<<"$speed")
  if [[ -n $floor ]]; then
    echo "The crypto floor of a new handshake (\`openssl speed\`: one ECDSA P-256 signature + two X25519"
    echo "operations): $floor µs; libgreen's server spends $(awk -v a="${CPU[green.new]}" -v b="$floor" 'BEGIN { printf "%.1f×", a / b }') that (the rest: TCP, the kernel, key"
    echo "schedule, records, the session), s_server $(awk -v a="${CPU[openssl.new]}" -v b="$floor" 'BEGIN { printf "%.1f×", a / b }')."
    echo
  fi
  # memory per idle TLS connection
  echo "Memory per idle TLS connection: bench_tls idle holds $TLS_IDLE_N TLS 1.3 connections open (after"
  echo "one ping/pong each); the server's RSS growth divided by the count."
  echo
  echo "| server | bytes per idle TLS connection |"
  echo "|---|---:|"
  local ikeys=(green green-shared go)
  (( go_ok )) || ikeys=(green green-shared)
  declare -A MEM
  for k in "${ikeys[@]}"; do
    tls_start "$k"
    out=$("$BIN/bench_tls" idle "$port" "$TLS_IDLE_N" "$dir/cert.pem" "$pid" 2>&1)
    tls_stop
    MEM[$k]=$(tls_kv "$out" bytes_per_conn)
    case $k in green) label="libgreen, dedicated stacks";; green-shared) label="libgreen, shared stack";; go) label="Go crypto/tls";; esac
    local ratio=""
    [[ $k == go && -n ${MEM[green]} && ${MEM[green]} != 0 ]] && ratio=" (libgreen dedicated: $(awk -v a="${MEM[green]}" -v b="${MEM[go]}" 'BEGIN { printf "%.2f×", a / b }') of Go's)"
    echo "| $label | $(tls_kv "$out" held) held: ${MEM[$k]} B$ratio |"
  done
  echo
  # examples/httpd over TLS and plain under wrk (keep-alive: handshakes only at the start)
  local httpd=${NET_EX:-$(dirname "$BIN")/examples}/httpd
  if command -v wrk >/dev/null 2>&1 && [[ -x $httpd ]]; then
    echo "\`examples/httpd\` (one hub) under \`wrk -t1 -c50 -d${TLS_SECONDS}s\`, keep-alive, plain and with \`--tls\`"
    echo "(TLS 1.3, the certificate above): requests per second and the server's CPU per request."
    echo
    echo "| httpd | req/s | µs CPU per request |"
    echo "|---|---:|---:|"
    declare -A RPS RCPU
    for k in plain tls; do
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      if [[ $k == tls ]]; then "$httpd" --tls "$dir/cert.pem" "$dir/key.pem" "$port" 1 >/dev/null 2>&1 &
      else "$httpd" "$port" 1 >/dev/null 2>&1 & fi
      pid=$!
      for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
      local scheme=http c0 c1
      [[ $k == tls ]] && scheme=https
      c0=$(awk '{ print $14 + $15 }' /proc/$pid/stat)
      out=$(wrk -t1 -c50 -d"${TLS_SECONDS}s" "$scheme://127.0.0.1:$port/" 2>&1)
      c1=$(awk '{ print $14 + $15 }' /proc/$pid/stat)
      tls_stop
      RPS[$k]=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
      local total; total=$(awk '/requests in/ { print $1 }' <<<"$out")
      RCPU[$k]=$(awk -v t="$(( c1 - c0 ))" -v n="${total:-0}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }')
    done
    echo "| plain | ${RPS[plain]} | ${RCPU[plain]} |"
    echo "| --tls | ${RPS[tls]} ($(awk -v a="${RPS[tls]:-0}" -v b="${RPS[plain]:-1}" 'BEGIN { printf "%.2f×", a / b }')) | ${RCPU[tls]} ($(awk -v a="${RCPU[tls]:-0}" -v b="${RCPU[plain]:-1}" 'BEGIN { printf "%.2f×", b ? a / b : 0 }')) |"
    echo
  fi
  rm -rf "$dir"
}
tls_section
