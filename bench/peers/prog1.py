"""prog1.py - the talk's Prog 1 with gevent: N greenlets each gevent.sleep(0.2); wall
time from the first spawn to the end of gevent.joinall.
Usage: python3 prog1.py N. Output: one line of key=value pairs, like bench_talk."""
import sys
import time

import gevent


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def main():
    n = int(sys.argv[1])
    t0 = time.monotonic()
    gs = [gevent.spawn(gevent.sleep, 0.2) for _ in range(n)]
    t1 = time.monotonic()
    gevent.joinall(gs)
    t2 = time.monotonic()
    print("n=%d created=%d ms=%.1f spawn_ms=%.1f hwm_kb=%d"
          % (n, n, (t2 - t0) * 1e3, (t1 - t0) * 1e3, status_kb("VmHWM")))


if __name__ == "__main__":
    main()
