// http_nethttp.go — the Go net/http peer of examples/httpd.c: the same response body
// and Content-Type; net/http adds its own Date header.
//
// usage: http_nethttp PORT    serve until killed
package main

import (
	"fmt"
	"net/http"
	"os"
)

const body = "Hello from a green thread\n"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: http_nethttp PORT")
		os.Exit(2)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Server"] = []string{"libgreen-httpd"}
		hd["Content-Type"] = []string{"text/plain"}
		hd["Content-Length"] = []string{"26"}
		w.Write([]byte(body))
	})
	fmt.Printf("http_nethttp on port %s\n", os.Args[1])
	if err := http.ListenAndServe(":"+os.Args[1], h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
