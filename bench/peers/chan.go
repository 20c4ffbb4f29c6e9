//go:build ignore

// chan.go — bench_chan's programs (issue 4) with goroutines, Go channels and sync.Mutex.
// run.sh sets GOMAXPROCS (1 and 2) in the environment.
//
// Usage: chan MODE N [STAGES]. Output: one line of key=value pairs, like bench_chan:
// msgs=M ms=T ns_per_msg=T/M (+ iters, handoffs, stages). MODE:
//
//	pingpong   two goroutines, two unbuffered channels, one each way: A sends i, B sends
//	           i + 1 back. msgs = 2N
//	buffered   one producer streams N ints through a channel of capacity 128 to one
//	           consumer, then closes it. msgs = N
//	mutex      two goroutines loop N times each: Lock; count; runtime.Gosched(); Unlock.
//	           msgs = hand-offs: acquisitions whose previous owner was the other one
//	mutex-uncontended  one goroutine: Lock; count; Unlock, N times. msgs = N
//	cond       two goroutines take turns through a sync.Cond. msgs = 2N
//	pipeline   STAGES (1,000) goroutines, each receiving from the unbuffered channel
//	           before it and sending (the int + 1) to the next; a source goroutine feeds
//	           N ints, main drains the last channel. msgs = N × STAGES
//
// Results are checked (echoes, sums); a wrong one exits non-zero.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	bufferedCap    = 128
	pipelineStages = 1000
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "chan: "+format+"\n", args...)
	os.Exit(1)
}

func pingpong(n int) (msgs, iters int) {
	ab, ba := make(chan int), make(chan int)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ab <- i
			if w := <-ba; w != i+1 {
				fail("ping-pong: wrong echo")
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			v := <-ab
			ba <- v + 1
		}
	}()
	wg.Wait()
	return 2 * n, 0
}

func buffered(n int) (msgs, iters int) {
	ch := make(chan int, bufferedCap)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	go func() {
		defer wg.Done()
		sum, got := 0, 0
		for v := range ch {
			sum += v
			got++
		}
		if got != n || sum != n*(n-1)/2 {
			fail("buffered: wrong count or sum")
		}
	}()
	wg.Wait()
	return n, 0
}

func mutex(n int) (msgs, iters int) {
	var mu sync.Mutex
	last, handoffs, count := -1, 0, 0
	var wg sync.WaitGroup
	wg.Add(2)
	for me := 0; me < 2; me++ {
		go func(me int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				mu.Lock()
				if last != me {
					if last >= 0 {
						handoffs++
					}
					last = me
				}
				count++
				runtime.Gosched() // holding it: the other one runs and queues on the mutex
				mu.Unlock()
			}
		}(me)
	}
	wg.Wait()
	if count != 2*n {
		fail("mutex: count %d, expected %d", count, 2*n)
	}
	return handoffs, 2 * n
}

// mutexUncontended: one goroutine locks and unlocks N times (bench_sync's
// mutex-uncontended). msgs = N
func mutexUncontended(n int) (msgs, iters int) {
	var mu sync.Mutex
	count := 0
	for i := 0; i < n; i++ {
		mu.Lock()
		count++
		mu.Unlock()
	}
	if count != n {
		fail("mutex-uncontended: count %d", count)
	}
	return n, 0
}

// cond: two goroutines take turns through a sync.Cond: Lock; Wait until it is our turn;
// give the turn; Signal; Unlock (bench_sync's cond). msgs = 2N
func cond(n int) (msgs, iters int) {
	var mu sync.Mutex
	c := sync.NewCond(&mu)
	turn, count := 0, 0
	var wg sync.WaitGroup
	wg.Add(2)
	for me := 0; me < 2; me++ {
		go func(me int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				mu.Lock()
				for turn != me {
					c.Wait()
				}
				turn = 1 - me
				count++
				c.Signal()
				mu.Unlock()
			}
		}(me)
	}
	wg.Wait()
	if count != 2*n {
		fail("cond: count %d, expected %d", count, 2*n)
	}
	return 2 * n, 0
}

func pipeline(n, stages int) (msgs, iters int) {
	chans := make([]chan int, stages+1)
	for i := range chans {
		chans[i] = make(chan int)
	}
	for s := 0; s < stages; s++ {
		go func(in <-chan int, out chan<- int) {
			for v := range in {
				out <- v + 1
			}
			close(out)
		}(chans[s], chans[s+1])
	}
	go func() {
		for i := 0; i < n; i++ {
			chans[0] <- i
		}
		close(chans[0])
	}()
	sum, got := 0, 0
	for v := range chans[stages] {
		sum += v
		got++
	}
	if got != n || sum != n*(n-1)/2+n*stages {
		fail("pipeline: got %d ints summing to %d", got, sum)
	}
	return n * stages, 0
}

// count parses "1M", "10K", "100" (like bench.h's bench_parse_count).
func count(s string) int {
	m := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		m, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		m, s = 1e6, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1
	}
	return int(v * m)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chan MODE N [STAGES]\nMODE: pingpong buffered mutex mutex-uncontended cond pipeline")
	os.Exit(2)
}

func main() {
	if len(os.Args) != 3 && len(os.Args) != 4 {
		usage()
	}
	mode, n, stages := os.Args[1], count(os.Args[2]), pipelineStages
	if len(os.Args) == 4 {
		stages = count(os.Args[3])
	}
	if n < 1 || stages < 1 {
		usage()
	}
	var msgs, iters int
	t0 := time.Now()
	switch mode {
	case "pingpong":
		msgs, iters = pingpong(n)
	case "buffered":
		msgs, iters = buffered(n)
	case "mutex":
		msgs, iters = mutex(n)
	case "mutex-uncontended":
		msgs, iters = mutexUncontended(n)
	case "cond":
		msgs, iters = cond(n)
	case "pipeline":
		msgs, iters = pipeline(n, stages)
	default:
		usage()
	}
	ns := float64(time.Since(t0).Nanoseconds())
	perMsg := 0.0
	if msgs > 0 {
		perMsg = ns / float64(msgs)
	}
	fmt.Printf("mode=%s n=%d msgs=%d ms=%.1f ns_per_msg=%.2f", mode, n, msgs, ns/1e6, perMsg)
	if iters > 0 {
		fmt.Printf(" iters=%d handoffs=%d", iters, msgs)
	}
	if mode == "pipeline" {
		fmt.Printf(" stages=%d", stages)
	}
	fmt.Printf(" gomaxprocs=%d\n", runtime.GOMAXPROCS(0))
}
