#!/bin/sh
# greenrun_test.sh GREENRUN PLAIN_IO — tools/greenrun on an unmodified program (built
# without libgreen): its output is what it prints without the patch, and --report lists
# the wrapped symbols as patched.
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
# the environment switches
GREEN_PATCH_LIB=/nonexistent "$greenrun" true 2>/dev/null && { echo "a missing library must fail"; exit 1; }
echo "greenrun: ok"
