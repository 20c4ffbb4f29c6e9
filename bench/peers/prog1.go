//go:build ignore

// prog1.go — the talk's Prog 1 with goroutines: N goroutines each sleep 200 ms;
// wall time from the first `go` to the end of the WaitGroup wait.
// Usage: prog1 N. Output: one line of key=value pairs, like bench_talk.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: prog1 N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: prog1 N")
		os.Exit(2)
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(200 * time.Millisecond)
			wg.Done()
		}()
	}
	spawn := time.Since(t0)
	wg.Wait()
	total := time.Since(t0)
	fmt.Printf("n=%d created=%d ms=%.1f spawn_ms=%.1f hwm_kb=%d\n", n, n,
		float64(total.Nanoseconds())/1e6, float64(spawn.Nanoseconds())/1e6, statusKB("VmHWM"))
}

// statusKB returns a field of /proc/self/status in KiB (VmRSS, VmSize, ...), -1 if absent.
func statusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, field+":") {
			v := strings.Fields(line[len(field)+1:])
			if len(v) > 0 {
				n, err := strconv.ParseInt(v[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}
