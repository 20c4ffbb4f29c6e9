"""http_gevent.py - the gevent StreamServer peer of examples/httpd.c: a greenlet per
connection, requests split at the blank line that ends their head (GET requests without
bodies, as wrk sends), each answered with the same bytes as httpd.

Usage: python3 http_gevent.py PORT   (serve until killed)"""
import sys

from gevent.server import StreamServer

HEAD = (b"HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 26\r\n")
BODY = b"Hello from a green thread\n"
RESPONSE = HEAD + b"\r\n" + BODY
CLOSING = HEAD + b"Connection: close\r\n\r\n" + BODY


def handle(sock, _addr):
    buf = b""
    while True:
        data = sock.recv(8192)
        if not data:
            return
        buf += data
        out = []
        close = False
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buf = buf[:end], buf[end + 4:]
            if b"connection: close" in head.lower():
                out.append(CLOSING)
                close = True
                break
            out.append(RESPONSE)
        if out:
            sock.sendall(b"".join(out))
        if close:
            return


def main():
    port = int(sys.argv[1])
    server = StreamServer(("0.0.0.0", port), handle, backlog=1024)
    print("http_gevent on port %d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
