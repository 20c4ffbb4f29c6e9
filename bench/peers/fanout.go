//go:build ignore

// fanout.go — bench_hubs's fan-out (issue 14) with goroutines. run.sh sets GOMAXPROCS
// (1 and 2) in the environment and passes the iteration count bench_hubs calibrated, so
// that both do the same work per task.
//
// Usage: fanout N ITERS. N goroutines, each: work(ITERS), sleep 10 ms, work(ITERS); all
// started from main, which waits for them. Output: one line of key=value pairs like
// bench_hubs: ms (first go statement to the last Done), n, iters, gomaxprocs. Go
// schedules a goroutine on its spawner's P and lets idle Ps steal, so this one program
// is the peer of both the fan-out and the skew rows.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// work: the same chain of multiply-adds and shifts as bench/hubs.c.
//
//go:noinline
func work(x uint64, iters int) uint64 {
	for i := 0; i < iters; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fanout N ITERS")
		os.Exit(2)
	}
	n, err1 := strconv.Atoi(os.Args[1])
	iters, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || n < 1 || iters < 0 {
		fmt.Fprintln(os.Stderr, "usage: fanout N ITERS")
		os.Exit(2)
	}
	out := make([]uint64, n)
	var wg sync.WaitGroup
	wg.Add(n)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		go func(i int) {
			defer wg.Done()
			x := work(uint64(i), iters)
			time.Sleep(10 * time.Millisecond)
			out[i] = work(x, iters)
		}(i)
	}
	wg.Wait()
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	for i := 0; i < n; i++ {
		if out[i] != work(work(uint64(i), iters), iters) {
			fmt.Fprintf(os.Stderr, "fanout: task %d computed a wrong result\n", i)
			os.Exit(1)
		}
	}
	fmt.Printf("mode=fanout n=%d iters=%d ms=%.1f gomaxprocs=%d\n", n, iters, ms, runtime.GOMAXPROCS(0))
}
