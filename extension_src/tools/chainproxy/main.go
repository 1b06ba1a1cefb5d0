// Command chainproxy is a second, minimal extension that is only a Runtime API proxy (the same
// runtimeproxy package, recording nothing). The end-to-end tests put it between the invocation
// history extension's proxy and Lambda to show that proxies chain:
//
//	runtime -> invocation-history-extension proxy -> chainproxy -> Runtime API
//
// Environment: CHAIN_PROXY_PORT (required), CHAIN_PROXY_UPSTREAM (default AWS_LAMBDA_RUNTIME_API).
// Lambda requires an extension's registered name to equal its file name: it registers as its own.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/invocation-history/extension/internal/extensionapi"
	"github.com/invocation-history/extension/internal/runtimeproxy"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil)).With("extension", "chainproxy")
	name := filepath.Base(os.Args[0])
	runtimeAPI := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	upstream := os.Getenv("CHAIN_PROXY_UPSTREAM")
	if upstream == "" {
		upstream = runtimeAPI
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	proxy, err := runtimeproxy.New(upstream, nil, log, time.Now)
	if err != nil {
		log.Error("bad upstream", "error", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("CHAIN_PROXY_PORT"))
	if err != nil {
		log.Error("cannot listen", "error", err)
		os.Exit(1)
	}
	runtimeproxy.Serve(l, proxy)

	client := extensionapi.NewClient(runtimeAPI, &http.Client{})
	if _, err := client.Register(ctx, name, extensionapi.Invoke, extensionapi.Shutdown); err != nil {
		log.Error("cannot register", "error", err)
		os.Exit(1)
	}
	for {
		ev, err := client.NextEvent(ctx)
		if err != nil || ev.EventType == extensionapi.Shutdown {
			break
		}
	}
	st := proxy.Stats()
	fmt.Printf("chainproxy shutdown forwarded=%d upstreamErrors=%d\n", st.Forwarded, st.UpstreamErrors)
}
