//go:build ignore

// prog2.go — the talk's Prog 2 with goroutines: N goroutines asleep (a 90 s timer, or
// until killed); once all of them wait, VmRSS and VmSize of the process; then close
// the kill channel and wait for all of them.
// Usage: prog2 N. Output: one line of key=value pairs, like bench_talk.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: prog2 N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: prog2 N")
		os.Exit(2)
	}
	rss0, vm0 := statusKB("VmRSS"), statusKB("VmSize")
	var wg sync.WaitGroup
	var started int64
	kill := make(chan struct{})
	t0 := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer wg.Done()
			atomic.AddInt64(&started, 1)
			t := time.NewTimer(90 * time.Second)
			select {
			case <-t.C:
			case <-kill:
				t.Stop()
			}
		}()
	}
	for atomic.LoadInt64(&started) < int64(n) {
		runtime.Gosched()
	}
	start := time.Since(t0)
	time.Sleep(100 * time.Millisecond)
	rss, vm := statusKB("VmRSS"), statusKB("VmSize")
	t2 := time.Now()
	close(kill)
	wg.Wait()
	killd := time.Since(t2)
	fmt.Printf("n=%d created=%d rss0_kb=%d rss_kb=%d vm0_kb=%d vm_kb=%d start_ms=%.3f kill_ms=%.3f\n",
		n, n, rss0, rss, vm0, vm, float64(start.Nanoseconds())/1e6, float64(killd.Nanoseconds())/1e6)
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
