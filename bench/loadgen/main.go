// Command loadgen is the benchmark's HTTP load generator for the extension's local API: c
// keep-alive connections send GET requests, for n requests in all or for a duration, and it prints
// one JSON object per URL with the request rate and latency percentiles (milliseconds).
//
// It stands in for wrk so that `make bench` needs nothing beyond the Go toolchain the project
// already builds with (no root, no system package), and so that the same client measures both
// sequential latency (-c 1) and throughput under concurrent load. Every request reads the whole
// body: a full store's answer is megabytes, and its transfer is part of what a caller waits for.
//
// -url may be given several times (with -c 1): the URLs are then requested in turn on the same
// connection, in an order that rotates each round, and each gets its own result (printed as a JSON
// array). That is how the bench measures a noise floor, a trivial request interleaved with the
// measured ones, so that whatever the machine does to the tail falls on both alike.
//
// -client picks how a request is sent. "direct" (the default) writes the request on a kept
// net.Conn (TCP_NODELAY, Go's default) and reads the answer with http.ReadResponse in the calling
// goroutine: one write, reads until the body ends, nothing else. "std" is net/http's Transport, as
// loadgen used before: each request is handed to the connection's write goroutine and its answer
// back from its read goroutine, two goroutine hand-offs per request that the scheduler may delay.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	URL         string  `json:"url"`
	Client      string  `json:"client"`
	Connections int     `json:"connections"`
	Requests    int     `json:"requests"`
	Errors      int64   `json:"errors"`
	Non2xx      int64   `json:"non2xx"`
	Statuses    []int   `json:"statuses"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	BytesPerReq float64 `json:"bytesPerRequest"`
	MeanMs      float64 `json:"meanMs"`
	P50Ms       float64 `json:"p50Ms"`
	P90Ms       float64 `json:"p90Ms"`
	P99Ms       float64 `json:"p99Ms"`
	MaxMs       float64 `json:"maxMs"`
}

type urls []string

func (u *urls) String() string     { return strings.Join(*u, ",") }
func (u *urls) Set(s string) error { *u = append(*u, s); return nil }

// getter sends one GET and reads the whole answer: its status and body size.
type getter interface {
	get(target string) (status int, bytes int64, err error)
}

// stdClient is net/http's client with its Transport (connection goroutines, pooling).
type stdClient struct{ client *http.Client }

func (c *stdClient) get(target string) (int, int64, error) {
	resp, err := c.client.Get(target)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, n, err
}

// directClient keeps one connection and does each exchange in the calling goroutine. It reconnects
// when the server closes the connection or an exchange fails.
type directClient struct {
	host   string
	conn   net.Conn
	reader *bufio.Reader
	buf    []byte
}

func (c *directClient) get(target string) (int, int64, error) {
	u, err := url.Parse(target)
	if err != nil {
		return 0, 0, err
	}
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return 0, 0, err
		}
		c.conn, c.reader = conn, bufio.NewReaderSize(conn, 64*1024)
	}
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.buf = append(c.buf[:0], "GET "...)
	c.buf = append(c.buf, u.RequestURI()...)
	c.buf = append(c.buf, " HTTP/1.1\r\nHost: "...)
	c.buf = append(c.buf, u.Host...)
	c.buf = append(c.buf, "\r\nUser-Agent: bench-loadgen\r\n\r\n"...)
	status, n, err := c.exchange()
	if err != nil {
		c.conn.Close()
		c.conn = nil
	}
	return status, n, err
}

func (c *directClient) exchange() (int, int64, error) {
	if _, err := c.conn.Write(c.buf); err != nil {
		return 0, 0, err
	}
	resp, err := http.ReadResponse(c.reader, nil)
	if err != nil {
		return 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = errors.New("server closed the connection") // counted as an error; reconnects next time
	}
	return resp.StatusCode, n, err
}

// perURL gathers one URL's samples and counters.
type perURL struct {
	samples  []time.Duration
	errs     int64
	non2xx   int64
	bytes    int64
	statuses map[int]bool
}

func main() {
	var targets urls
	flag.Var(&targets, "url", "URL to GET (repeatable with -c 1: the URLs take turns)")
	conns := flag.Int("c", 1, "concurrent connections")
	total := flag.Int("n", 0, "requests in all, per URL (0: run for -d)")
	duration := flag.Duration("d", 5*time.Second, "how long to run when -n is 0; also the upper bound when -n is set")
	warmup := flag.Int("warmup", 0, "requests before measuring, per connection's worth and per URL (sent one after another)")
	clientKind := flag.String("client", "direct", "direct (one kept connection, the exchange in the calling goroutine) or std (net/http's Transport)")
	flag.Parse()
	if len(targets) == 0 || *conns < 1 || (len(targets) > 1 && *conns != 1) || (*clientKind != "direct" && *clientKind != "std") {
		fmt.Fprintln(os.Stderr, "usage: loadgen -url URL [-url URL2 ...] [-c N (1 with several URLs)] [-n N | -d DURATION] [-warmup N] [-client direct|std]")
		os.Exit(2)
	}
	newClient := func() getter {
		if *clientKind == "std" {
			return &stdClient{&http.Client{
				Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true},
				Timeout:   30 * time.Second,
			}}
		}
		return &directClient{}
	}
	// One client per connection; with std, one Transport shared by the connections, as before.
	clients := make([]getter, *conns)
	shared := newClient()
	for i := range clients {
		if *clientKind == "std" {
			clients[i] = shared
		} else {
			clients[i] = newClient()
		}
	}

	for i := range *warmup * *conns {
		for _, t := range targets {
			_, _, _ = clients[i%*conns].get(t)
		}
	}

	stats := make([][]*perURL, *conns) // [connection][url]
	for c := range stats {
		stats[c] = make([]*perURL, len(targets))
		for u := range targets {
			stats[c][u] = &perURL{statuses: map[int]bool{}}
		}
	}
	var issued atomic.Int64
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := clients[c]
			for round := 0; time.Now().Before(deadline); round++ {
				if *total > 0 && issued.Add(1) > int64(*total) {
					return
				}
				for k := range targets {
					u := (round + k) % len(targets) // rotates, so no URL always follows the same one
					s := stats[c][u]
					began := time.Now()
					status, n, err := client.get(targets[u])
					elapsed := time.Since(began)
					if err != nil {
						s.errs++
						continue
					}
					s.statuses[status] = true
					if status/100 != 2 {
						s.non2xx++
					}
					s.bytes += n
					s.samples = append(s.samples, elapsed)
				}
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()

	var out []result
	for u, target := range targets {
		r := result{URL: target, Client: *clientKind, Connections: *conns, Seconds: seconds, Statuses: []int{}}
		var all []time.Duration
		var bytes int64
		for c := range stats {
			s := stats[c][u]
			all = append(all, s.samples...)
			r.Errors += s.errs
			r.Non2xx += s.non2xx
			bytes += s.bytes
			for status := range s.statuses {
				r.Statuses = append(r.Statuses, status)
			}
		}
		sort.Ints(r.Statuses)
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		r.Requests = len(all)
		if len(all) > 0 {
			var sum time.Duration
			for _, d := range all {
				sum += d
			}
			r.RPS = float64(len(all)) / seconds
			r.BytesPerReq = float64(bytes) / float64(len(all))
			r.MeanMs = ms(sum / time.Duration(len(all)))
			r.P50Ms, r.P90Ms, r.P99Ms = ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99))
			r.MaxMs = ms(all[len(all)-1])
		}
		out = append(out, r)
	}
	enc := json.NewEncoder(os.Stdout)
	if len(out) == 1 {
		_ = enc.Encode(out[0])
	} else {
		_ = enc.Encode(out)
	}
}

// pct is the nearest-rank percentile of sorted samples.
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
