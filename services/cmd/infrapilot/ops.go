package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// opsServer serves /metrics and /healthz for `infrapilot run` processes
// that have no gateway, so every process can be scraped and probed.
type opsServer struct {
	addr string
	srv  *http.Server
	ln   net.Listener
}

func newOpsServer(addr string, reg *prometheus.Registry) *opsServer {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	return &opsServer{addr: addr, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
}

func (o *opsServer) start() error {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	o.ln = ln
	go func() { _ = o.srv.Serve(ln) }()
	return nil
}

// Addr is the bound address (useful with port 0).
func (o *opsServer) Addr() string { return o.ln.Addr().String() }

func (o *opsServer) stop(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("metrics listener shutdown", "err", err)
	}
}
