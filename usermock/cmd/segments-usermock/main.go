// Command segments-usermock is a mock of the user service for development
// and tests: it serves userservice.v1.UserService and usermock.v1.UserMockAdmin
// over gRPC and publishes every user change on a Kafka topic. Flags map to
// app.Options; each has an environment fallback, and a flag wins.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"segments/usermock/internal/app"
	"segments/usermock/internal/logging"
	"segments/usermock/internal/publisher"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// Until the flags are read: text.
	logger := log.New(os.Stderr, logging.Prefix, 0)
	rateDefault, err := envFloat("USERMOCK_RANDOM_RATE", 0)
	if err != nil {
		logger.Print(err)
		return 2
	}
	seedDefault, err := envInt("USERMOCK_RANDOM_SEED", 0)
	if err != nil {
		logger.Print(err)
		return 2
	}
	fs := flag.NewFlagSet("segments-usermock", flag.ContinueOnError)
	listen := fs.String("grpc-listen", env("USERMOCK_GRPC_LISTEN", "127.0.0.1:50061"), "gRPC listen address; port 0 picks a free port (env USERMOCK_GRPC_LISTEN)")
	brokers := fs.String("kafka-brokers", env("USERMOCK_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated host:port (env USERMOCK_KAFKA_BROKERS)")
	topic := fs.String("topic", env("USERMOCK_TOPIC", "UserAction"), "topic of the user events (env USERMOCK_TOPIC)")
	storePath := fs.String("store", env("USERMOCK_STORE", ""), "file the users are kept in; empty: in memory only (env USERMOCK_STORE)")
	rate := fs.Float64("random-rate", rateDefault, "background random changes per second; 0: none (env USERMOCK_RANDOM_RATE)")
	seed := fs.Int64("random-seed", seedDefault, "seed of the background random changes; 0: from the clock (env USERMOCK_RANDOM_SEED)")
	metricsListen := fs.String("metrics-listen", env("USERMOCK_METRICS_LISTEN", ""), "Prometheus metrics address HOST:PORT (GET /metrics); empty: none (env USERMOCK_METRICS_LISTEN)")
	logFormat := fs.String("log-format", env("USERMOCK_LOG_FORMAT", "text"), "log lines as text or json (one object per line: time, level, message) (env USERMOCK_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		logger.Printf("unexpected arguments: %q", fs.Args())
		return 2
	}
	logs, err := logging.New(os.Stderr, *logFormat)
	if err != nil {
		logger.Printf("--log-format: %v", err)
		return 2
	}
	logger = logs.Log
	list := publisher.ParseBrokers(*brokers)
	switch {
	case len(list) == 0:
		logger.Print("--kafka-brokers: empty")
		return 2
	case *topic == "":
		logger.Print("--topic: empty")
		return 2
	case !(*rate >= 0) || *rate > 1e9:
		logger.Print("--random-rate: must be 0..1e9")
		return 2
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	a, err := app.Start(app.Options{
		GRPCListen:    *listen,
		Brokers:       list,
		Topic:         *topic,
		StorePath:     *storePath,
		RandomRate:    *rate,
		RandomSeed:    *seed,
		MetricsListen: *metricsListen,
		Logger:        logger,
	})
	if err != nil {
		logs.Errorf("cannot start: %v", err)
		return 1
	}
	// Scripts grep this exact line for the port.
	logger.Printf("serving gRPC on %s", a.Addr())
	if addr := a.MetricsAddr(); addr != "" {
		logger.Printf("serving metrics on http://%s/metrics", addr)
	}

	s := <-sig
	logger.Printf("%v: shutting down", s)
	if err := a.Shutdown(); err != nil {
		logs.Errorf("shutdown: %v", err)
		// Undelivered events are reported above; the exit stays clean.
		if !errors.Is(err, app.ErrUndelivered) {
			return 1
		}
	}
	logger.Print("stopped")
	return 0
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func envFloat(name string, fallback float64) (float64, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a number", name, v)
	}
	return f, nil
}

func envInt(name string, fallback int64) (int64, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not an integer", name, v)
	}
	return n, nil
}
