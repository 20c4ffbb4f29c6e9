#!/bin/sh
# greenrun_test.sh GREENRUN PLAIN_IO — tools/greenrun on an unmodified program (built
# without libgreen): its output is what it prints without the patch, --report lists the
# wrapped symbols as patched, and nothing maps libunwind until something is reported.
set -e
greenrun=$1 prog=$2
want=$("$prog")
got=$("$greenrun" "$prog")
if [ "$got" != "$want" ]; then
    echo "greenrun changed the output:"; echo "--- without"; echo "$want"; echo "--- with"; echo "$got"
    exit 1
fi
echo "$got"
report=$("$greenrun" --report "$prog" 2>&1 >/dev/null)
for sym in read write connect poll select nanosleep getaddrinfo __recv_chk; do
    if ! echo "$report" | grep -q "^green-patch: $sym  *patched"; then
        echo "--report does not list $sym as patched:"; echo "$report"
        exit 1
    fi
done
if echo "$report" | grep -v pass-through | grep -q "NOT patched"; then
    echo "--report shows unpatched symbols:"; echo "$report"
    exit 1
fi
echo "--report: $(echo "$report" | grep -c ' patched') symbols patched, e.g.:"
echo "$report" | head -4
# libunwind (and its liblzma) is loaded by the first report, not at start: a process
# under greenrun (the monitor on) that reports nothing does not map it
maps=$("$greenrun" cat /proc/self/maps)
echo "$maps" | grep -q 'libgreen-patch' || { echo "cat /proc/self/maps under greenrun: no libgreen-patch.so?"; exit 1; }
if echo "$maps" | grep -E 'libunwind|liblzma'; then
    echo "a process under greenrun that reported nothing maps libunwind or liblzma"
    exit 1
fi
# the environment switches
GREEN_PATCH_LIB=/nonexistent "$greenrun" true 2>/dev/null && { echo "a missing library must fail"; exit 1; }
echo "greenrun: ok"
