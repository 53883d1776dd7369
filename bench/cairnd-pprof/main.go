// Command cairnd-pprof is cairnd (the same daemon.Main as cmd/cairnd) with net/http/pprof
// served on $CAIRN_BENCH_PPROF (e.g. 127.0.0.1:6060), for profiling the server under
// load in bench/run.sh. Measurements use the real cmd/cairnd; this binary is only used
// for the separate profiling passes.
package main

import (
	"context"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairn-dev/cairn/internal/daemon"
)

func main() {
	if addr := os.Getenv("CAIRN_BENCH_PPROF"); addr != "" {
		go func() { log.Println(http.ListenAndServe(addr, nil)) }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := daemon.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
