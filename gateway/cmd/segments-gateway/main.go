// Command segments-gateway serves the segments service's HTTP API. It only
// maps flags (each with an environment fallback) to gateway.Options.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"segments/gateway"
	"segments/gateway/internal/logging"
	"segments/gateway/internal/metrics"
)

func main() {
	fs := flag.NewFlagSet("segments-gateway", flag.ContinueOnError)
	addr := fs.String("http-listen", env("GATEWAY_HTTP_LISTEN", ":8080"), "HTTP listen address (env GATEWAY_HTTP_LISTEN)")
	upstream := fs.String("upstream", env("GATEWAY_UPSTREAM", "127.0.0.1:50051"), "segments-server gRPC address (env GATEWAY_UPSTREAM)")
	timeout := fs.Duration("upstream-timeout", envDuration("GATEWAY_UPSTREAM_TIMEOUT", 10*time.Second), "deadline of each upstream call (env GATEWAY_UPSTREAM_TIMEOUT)")
	longTimeout := fs.Duration("long-upstream-timeout", envDuration("GATEWAY_LONG_UPSTREAM_TIMEOUT", 10*time.Minute), "deadline of each upstream call that works on whole sets of users: create, remove, update-percent, bulk-add, bulk-remove, stream-members (env GATEWAY_LONG_UPSTREAM_TIMEOUT)")
	reportTimeout := fs.Duration("report-timeout", envDuration("GATEWAY_REPORT_TIMEOUT", 30*time.Minute), "longest a report download may take (env GATEWAY_REPORT_TIMEOUT)")
	maxBody := fs.Int64("max-body-bytes", envInt("GATEWAY_MAX_BODY_BYTES", gateway.DefaultMaxBodyBytes), "largest request body accepted (env GATEWAY_MAX_BODY_BYTES)")
	caFile := fs.String("upstream-ca-file", env("GATEWAY_UPSTREAM_CA_FILE", ""), "PEM CA certificates of a TLS upstream; empty: plaintext (env GATEWAY_UPSTREAM_CA_FILE)")
	certFile := fs.String("upstream-cert-file", env("GATEWAY_UPSTREAM_CERT_FILE", ""), "the gateway's client certificate for an upstream that requires one (mTLS) (env GATEWAY_UPSTREAM_CERT_FILE)")
	keyFile := fs.String("upstream-key-file", env("GATEWAY_UPSTREAM_KEY_FILE", ""), "the key of --upstream-cert-file (env GATEWAY_UPSTREAM_KEY_FILE)")
	serverName := fs.String("upstream-server-name", env("GATEWAY_UPSTREAM_SERVER_NAME", ""), "name to check in the upstream's certificate (default: the host of --upstream) (env GATEWAY_UPSTREAM_SERVER_NAME)")
	logFormat := fs.String("log-format", env("GATEWAY_LOG_FORMAT", "text"), "log lines as text (key=value) or json (one object per line: time, level, message, fields) (env GATEWAY_LOG_FORMAT)")
	grace := fs.Duration("shutdown-grace", envDuration("GATEWAY_SHUTDOWN_GRACE", 10*time.Second), "time in-flight requests get on SIGTERM (env GATEWAY_SHUTDOWN_GRACE)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *maxBody <= 0 || *timeout <= 0 || *longTimeout <= 0 || *reportTimeout <= 0 || *grace < 0 {
		fmt.Fprintln(os.Stderr, "segments-gateway: --max-body-bytes, --upstream-timeout, --long-upstream-timeout and --report-timeout must be positive, --shutdown-grace not negative")
		os.Exit(2)
	}

	logger, err := logging.New(os.Stderr, *logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "segments-gateway: --log-format:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = gateway.Run(ctx, gateway.Options{
		Addr:                *addr,
		Upstream:            *upstream,
		UpstreamTLS:         gateway.UpstreamTLS{CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile, ServerName: *serverName},
		UpstreamTimeout:     *timeout,
		LongUpstreamTimeout: *longTimeout,
		ReportTimeout:       *reportTimeout,
		MaxBodyBytes:        *maxBody,
		ShutdownTimeout:     *grace,
		Logger:              logger,
		Version:             metrics.Version(),
	})
	if err != nil {
		logger.Error("gateway stopped", "error", err.Error())
		os.Exit(1)
	}
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func envDuration(name string, fallback time.Duration) time.Duration {
	v, ok := os.LookupEnv(name)
	if !ok {
		return fallback
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "segments-gateway: %s=%q: not a duration\n", name, v)
		os.Exit(2)
	}
	return d
}

func envInt(name string, fallback int64) int64 {
	v, ok := os.LookupEnv(name)
	if !ok {
		return fallback
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "segments-gateway: %s=%q: not an integer\n", name, v)
		os.Exit(2)
	}
	return n
}
