// http_raw.go — the Go raw-net peer of examples/httpd.c: a goroutine per connection
// reading requests through a 4 KiB bufio.Reader and answering each with the same bytes
// as httpd. Requests are split at the blank line that ends their head (GET requests
// without bodies, as wrk sends); "Connection: close" closes after the response.
//
// usage: http_raw PORT    serve until killed
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
)

var response = []byte("HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n" +
	"Content-Length: 26\r\n\r\nHello from a green thread\n")
var closing = []byte("HTTP/1.1 200 OK\r\nServer: libgreen-httpd\r\nContent-Type: text/plain\r\n" +
	"Content-Length: 26\r\nConnection: close\r\n\r\nHello from a green thread\n")

func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	for {
		close := false
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) <= 2 {
				break
			}
			if len(line) > 11 && bytes.EqualFold(line[:11], []byte("connection:")) &&
				bytes.Contains(bytes.ToLower(line), []byte("close")) {
				close = true
			}
		}
		if close {
			c.Write(closing)
			return
		}
		if _, err := c.Write(response); err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: http_raw PORT")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("http_raw on port %s\n", os.Args[1])
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
