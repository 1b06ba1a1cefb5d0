// Command loadgen is the benchmark's HTTP load generator for the extension's local API: c
// keep-alive connections send GET requests to one URL, for n requests in all or for a duration,
// and it prints one JSON object with the request rate and latency percentiles (milliseconds).
//
// It stands in for wrk so that `make bench` needs nothing beyond the Go toolchain the project
// already builds with (no root, no system package), and so that the same client measures both
// sequential latency (-c 1) and throughput under concurrent load. Every request reads the whole
// body: a full store's answer is megabytes, and its transfer is part of what a caller waits for.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	URL         string  `json:"url"`
	Connections int     `json:"connections"`
	Requests    int     `json:"requests"`
	Errors      int64   `json:"errors"`
	Non2xx      int64   `json:"non2xx"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	BytesPerReq float64 `json:"bytesPerRequest"`
	MeanMs      float64 `json:"meanMs"`
	P50Ms       float64 `json:"p50Ms"`
	P90Ms       float64 `json:"p90Ms"`
	P99Ms       float64 `json:"p99Ms"`
	MaxMs       float64 `json:"maxMs"`
}

func main() {
	url := flag.String("url", "", "URL to GET")
	conns := flag.Int("c", 1, "concurrent connections")
	total := flag.Int("n", 0, "requests in all (0: run for -d)")
	duration := flag.Duration("d", 5*time.Second, "how long to run when -n is 0; also the upper bound when -n is set")
	warmup := flag.Int("warmup", 0, "requests before measuring, per connection's worth (sent one after another)")
	flag.Parse()
	if *url == "" || *conns < 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -url URL [-c N] [-n N | -d DURATION] [-warmup N]")
		os.Exit(2)
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true},
		Timeout:   30 * time.Second,
	}
	var errs, non2xx, bytes atomic.Int64
	get := func() (time.Duration, bool) {
		start := time.Now()
		resp, err := client.Get(*url)
		if err != nil {
			errs.Add(1)
			return 0, false
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil {
			errs.Add(1)
			return 0, false
		}
		if resp.StatusCode/100 != 2 {
			non2xx.Add(1)
		}
		bytes.Add(n)
		return elapsed, true
	}

	for range *warmup * *conns {
		get()
	}
	errs.Store(0)
	non2xx.Store(0)
	bytes.Store(0)

	var issued atomic.Int64
	deadline := time.Now().Add(*duration)
	samples := make([][]time.Duration, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if *total > 0 && issued.Add(1) > int64(*total) {
					return
				}
				if d, ok := get(); ok {
					samples[c] = append(samples[c], d)
				}
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()

	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := result{URL: *url, Connections: *conns, Requests: len(all), Errors: errs.Load(), Non2xx: non2xx.Load(), Seconds: seconds}
	if len(all) > 0 {
		var sum time.Duration
		for _, d := range all {
			sum += d
		}
		r.RPS = float64(len(all)) / seconds
		r.BytesPerReq = float64(bytes.Load()) / float64(len(all))
		r.MeanMs = ms(sum / time.Duration(len(all)))
		r.P50Ms, r.P90Ms, r.P99Ms = ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99))
		r.MaxMs = ms(all[len(all)-1])
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
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
