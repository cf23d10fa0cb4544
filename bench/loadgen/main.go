// Command loadgen offers webhooks at an exact rate (open loop) over
// keep-alive HTTP/1.1 connections, and prints what happened as JSON.
//
// wrk's paced mode offers less than asked whenever responses slow down, and
// vegeta holds the rate but costs ~110 µs of CPU per request, a quarter of
// this machine at 5,000/s, taken from the gateway it measures. This one
// writes prebuilt requests on raw connections: a few µs each.
//
// Each request is sent at its scheduled time whatever the previous ones did;
// a request waits for a free connection when every connection is busy, and
// its latency is counted from its scheduled time, so that a stall is
// measured rather than hidden (no coordinated omission).
//
//	loadgen -addr 127.0.0.1:8080 -rate 5000 -duration 10s samples/*.json
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

type result struct {
	Offered     int64   `json:"offered"`
	OfferedRate float64 `json:"offered_per_s"`
	Completed   int64   `json:"completed"`
	OK          int64   `json:"ok"`
	Non2xx      int64   `json:"non2xx"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
}

// samples splits each file at its createdAt value, so that every request
// carries a distinct one and the gateway's de-duplication streams them all.
func samples(paths []string) ([][2][]byte, error) {
	re := regexp.MustCompile(`"createdAt": \d+`)
	var parts [][2][]byte
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		loc := re.FindIndex(body)
		if loc == nil {
			return nil, fmt.Errorf("no createdAt in %s", p)
		}
		before := append(append([]byte{}, body[:loc[0]]...), `"createdAt": `...)
		parts = append(parts, [2][]byte{before, body[loc[1]:]})
	}
	return parts, nil
}

type worker struct {
	addr, host, path string
	conn             net.Conn
	r                *bufio.Reader
	buf              bytes.Buffer
}

func (w *worker) do(before, after []byte, createdAt int64) (int, error) {
	if w.conn == nil {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			return 0, err
		}
		w.conn, w.r = c, bufio.NewReaderSize(c, 16<<10)
	}
	stamp := strconv.AppendInt(nil, createdAt, 10)
	w.buf.Reset()
	fmt.Fprintf(&w.buf, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		w.path, w.host, len(before)+len(stamp)+len(after))
	w.buf.Write(before)
	w.buf.Write(stamp)
	w.buf.Write(after)
	if _, err := w.conn.Write(w.buf.Bytes()); err != nil {
		w.reset()
		return 0, err
	}
	resp, err := http.ReadResponse(w.r, nil)
	if err != nil {
		w.reset()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		w.reset()
	}
	return resp.StatusCode, err
}

func (w *worker) reset() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

type job struct{ due time.Time }

// slot is one connection's worker, fed through jobs.
type slot struct{ jobs chan job }

// pool hands each due request to the connection that became idle last, as
// HTTP clients' connection pools do (Go's net/http among them): the few
// connections a rate needs stay warm, and the others are dialled only when
// requests pile up, so that a stall still finds a free connection, up to
// -connections. Handed out in turn (goroutines reading one channel), every
// request went to the connection idle the longest: at 256 connections that
// cost the gateway 6-10 µs more per request and doubled its p99.
type pool struct {
	mu      sync.Mutex
	idle    []*slot // the most recently idle last
	backlog []job   // waiting for a connection, oldest first
	pending sync.WaitGroup
}

func (p *pool) submit(j job) {
	p.pending.Add(1)
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		s := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		s.jobs <- j
		return
	}
	p.backlog = append(p.backlog, j)
	p.mu.Unlock()
}

// serve runs j on s, then the backlog, then makes s idle again.
func (p *pool) serve(s *slot, j job, run func(job)) {
	for {
		run(j)
		p.pending.Done()
		p.mu.Lock()
		if len(p.backlog) == 0 {
			p.idle = append(p.idle, s)
			p.mu.Unlock()
			return
		}
		j = p.backlog[0]
		p.backlog = p.backlog[1:]
		p.mu.Unlock()
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port of the gateway")
	path := flag.String("path", "/webhooks", "request path")
	rate := flag.Float64("rate", 1000, "requests per second to offer")
	duration := flag.Duration("duration", 10*time.Second, "how long to offer them")
	conns := flag.Int("connections", 64, "keep-alive connections (the most requests in flight)")
	tick := flag.Duration("tick", time.Millisecond, "how often due requests are handed out: shorter is smoother and costs more CPU")
	flag.Parse()
	// One P: the workers take turns on one core instead of waking each other
	// across two, which is most of what a request costs here.
	runtime.GOMAXPROCS(1)
	parts, err := samples(flag.Args())
	if err != nil || len(parts) == 0 {
		fmt.Fprintln(os.Stderr, "loadgen: need sample files with a createdAt:", err)
		os.Exit(2)
	}

	var mu sync.Mutex
	var res result
	var latencies []time.Duration
	var wg sync.WaitGroup
	base := int64(1718035200000) + time.Now().UnixNano()/1000%10_000_000_000
	var counter int64
	p := &pool{}
	slots := make([]*slot, *conns)
	for i := range slots {
		s := &slot{jobs: make(chan job, 1)}
		slots[i] = s
		p.idle = append(p.idle, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{addr: *addr, host: *addr, path: *path}
			defer w.reset()
			var local []time.Duration
			run := func(j job) {
				mu.Lock()
				counter++
				n := counter
				mu.Unlock()
				part := parts[n%int64(len(parts))]
				code, err := w.do(part[0], part[1], base+n)
				took := time.Since(j.due)
				mu.Lock()
				res.Completed++
				switch {
				case err != nil:
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				case code >= 200 && code < 300:
					res.OK++
				default:
					res.Non2xx++
				}
				mu.Unlock()
				local = append(local, took)
			}
			for j := range s.jobs {
				p.serve(s, j, run)
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}

	// Woken once a tick rather than per request (a timer per request cost
	// more CPU than the request): each tick hands out every request whose
	// time has come, stamped with that time.
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	end := start.Add(*duration)
	next := start
	for next.Before(end) {
		if d := time.Until(next); d > 0 {
			time.Sleep(max(d, *tick))
		}
		for now := time.Now(); !next.After(now) && next.Before(end); next = next.Add(interval) {
			p.submit(job{next})
			res.Offered++
		}
	}
	res.OfferedRate = float64(res.Offered) / time.Since(start).Seconds()
	p.pending.Wait()
	for _, s := range slots {
		close(s.jobs)
	}
	wg.Wait()

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	at := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))]) / 1e6
	}
	res.P50Ms, res.P99Ms, res.MaxMs = at(0.5), at(0.99), at(1)
	json.NewEncoder(os.Stdout).Encode(res)
}
