"""prog2.py - the talk's Prog 2 with gevent: N greenlets asleep (gevent.sleep(90));
once all of them sleep, VmRSS and VmSize of the process; then gevent.killall.
Usage: python3 prog2.py N. Output: one line of key=value pairs, like bench_talk."""
import sys
import time

import gevent


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


started = 0


def sleeper():
    global started
    started += 1
    gevent.sleep(90)


def main():
    n = int(sys.argv[1])
    rss0, vm0 = status_kb("VmRSS"), status_kb("VmSize")
    t0 = time.monotonic()
    gs = [gevent.spawn(sleeper) for _ in range(n)]
    while started < n:
        gevent.sleep(0)
    t1 = time.monotonic()
    gevent.sleep(0.1)
    rss, vm = status_kb("VmRSS"), status_kb("VmSize")
    t2 = time.monotonic()
    gevent.killall(gs)
    t3 = time.monotonic()
    print("n=%d created=%d rss0_kb=%d rss_kb=%d vm0_kb=%d vm_kb=%d start_ms=%.3f kill_ms=%.3f"
          % (n, n, rss0, rss, vm0, vm, (t1 - t0) * 1e3, (t3 - t2) * 1e3))


if __name__ == "__main__":
    main()
