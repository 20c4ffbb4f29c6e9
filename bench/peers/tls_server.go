// tls_server.go — the Go peer of bench_tls serve (bench/tls.sh): crypto/tls, a goroutine
// per connection; reads a line, answers "pong\n", waits for EOF.
//
//	go run tls_server.go PORT CERT KEY
package main

import (
	"crypto/tls"
	"log"
	"os"
)

func main() {
	cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := tls.Listen("tcp", "127.0.0.1:"+os.Args[1], cfg)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(c *tls.Conn) {
			defer c.Close()
			buf := make([]byte, 256)
			if _, err := c.Read(buf); err != nil {
				return
			}
			if _, err := c.Write([]byte("pong\n")); err != nil {
				return
			}
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}(c.(*tls.Conn))
	}
}
