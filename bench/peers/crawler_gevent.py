"""crawler_gevent.py - the gevent peer of examples/crawler.c in the crawler benchmark
(bench/net.sh): a greenlet per URL, gevent.socket, HTTP/1.1 GET with "Connection:
close", the body counted up to EOF.

Usage: python3 crawler_gevent.py URL...   (http://host:port/path)
Prints "OK of N fetched in T ms" like crawler, from the first spawn to the last join."""
import resource
import sys
import time

import gevent
from gevent import socket


def get_url(url):
    rest = url[len("http://"):]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    sock = socket.create_connection((host, int(port or 80)), timeout=30)
    try:
        sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: crawler_gevent\r\n"
                      "Connection: close\r\n\r\n" % (path, host)).encode())
        chunks = []
        while True:
            data = sock.recv(4096)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    resp = b"".join(chunks)
    head, sep, body = resp.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 200"):
        return -1
    return len(body)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    urls = sys.argv[1:]
    t0 = time.monotonic()
    gs = [gevent.spawn(get_url, u) for u in urls]
    gevent.joinall(gs)
    ms = (time.monotonic() - t0) * 1e3
    ok = sum(1 for g in gs if g.successful() and g.value >= 0)
    print("%d of %d fetched in %.0f ms" % (ok, len(urls), ms))
    sys.exit(0 if ok == len(urls) else 1)


if __name__ == "__main__":
    main()
