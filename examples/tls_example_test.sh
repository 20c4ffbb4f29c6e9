#!/bin/sh
# tls_example_test.sh — runs an example with --tls CERT KEY, CERT a self-signed
# certificate for localhost and 127.0.0.1 made here by the openssl tool (77: no tool).
#   tls_example_test.sh PROGRAM ARGS...      PROGRAM --tls CERT KEY ARGS...
#   tls_example_test.sh crawler HTTPD CRAWLER
#       httpd --tls serves on a free port; the crawler fetches https:// URLs from it
command -v openssl >/dev/null 2>&1 || { echo "no openssl tool: skipped"; exit 77; }
dir=$(mktemp -d) || exit 1
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$dir/key.pem" -out "$dir/cert.pem" \
  2>"$dir/req.log" || { cat "$dir/req.log"; exit 1; }
if [ "$1" != crawler ]; then
  prog=$1; shift
  "$prog" --tls "$dir/cert.pem" "$dir/key.pem" "$@"
  exit $?
fi
httpd=$2 crawler=$3
"$httpd" --tls "$dir/cert.pem" "$dir/key.pem" 0 >"$dir/httpd.log" 2>&1 &
pid=$!
port=
for i in $(seq 100); do
  port=$(sed -n 's/^httpd on port \([0-9]*\).*/\1/p' "$dir/httpd.log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "httpd did not start"; cat "$dir/httpd.log"; exit 1; }
"$crawler" --ca "$dir/cert.pem" https://localhost:$port/a https://127.0.0.1:$port/b https://localhost:$port/c
