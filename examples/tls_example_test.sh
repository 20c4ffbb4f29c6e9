#!/bin/sh
# tls_example_test.sh — runs an example with --tls CERT KEY, CERT a self-signed
# certificate for localhost and 127.0.0.1 made here by the openssl tool (77: no tool).
#   tls_example_test.sh PROGRAM ARGS...      PROGRAM --tls CERT KEY ARGS...
#   tls_example_test.sh crawler HTTPD CRAWLER
#       httpd --tls serves on a free port; the crawler fetches https:// URLs from it
#   tls_example_test.sh greenrun HTTPD GREENRUN
#       the same server; the curl program (unmodified, OpenSSL inside) under greenrun
#       (libgreen-patch.so preloaded) fetches two https:// URLs from it (77: no curl)
command -v openssl >/dev/null 2>&1 || { echo "no openssl tool: skipped"; exit 77; }
dir=$(mktemp -d) || exit 1
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$dir/key.pem" -out "$dir/cert.pem" \
  2>"$dir/req.log" || { cat "$dir/req.log"; exit 1; }
if [ "$1" != crawler ] && [ "$1" != greenrun ]; then
  prog=$1; shift
  "$prog" --tls "$dir/cert.pem" "$dir/key.pem" "$@"
  exit $?
fi
mode=$1 httpd=$2 client=$3
[ "$mode" = greenrun ] && ! command -v curl >/dev/null 2>&1 && { echo "no curl: skipped"; exit 77; }
"$httpd" --tls "$dir/cert.pem" "$dir/key.pem" 0 >"$dir/httpd.log" 2>&1 &
pid=$!
port=
for i in $(seq 100); do
  port=$(sed -n 's/^httpd on port \([0-9]*\).*/\1/p' "$dir/httpd.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "httpd did not start"; cat "$dir/httpd.log"; exit 1; }
if [ "$mode" = crawler ]; then
  "$client" --ca "$dir/cert.pem" https://localhost:$port/a https://127.0.0.1:$port/b https://localhost:$port/c
  exit $?
fi
out=$("$client" --threads curl -sS --cacert "$dir/cert.pem" https://localhost:$port/a https://127.0.0.1:$port/b) || exit 1
echo "$out"
[ "$(echo "$out" | grep -c 'Hello from a green thread')" = 2 ] || { echo "expected two pages"; exit 1; }
