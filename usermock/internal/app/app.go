// Package app wires the mock together: store, publisher, gRPC server (with
// health and reflection) and the optional background random changes. The
// command and the integration tests both run it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"segments/usermock/internal/metrics"
	"segments/usermock/internal/publisher"
	"segments/usermock/internal/randomchanges"
	"segments/usermock/internal/server"
	"segments/usermock/internal/store"
)

// Options of Start; see the command's flags.
type Options struct {
	GRPCListen string
	Brokers    []string
	Topic      string
	// StorePath is the store's log file; empty: in memory only.
	StorePath string
	// RandomRate is the pace of background random changes per second; 0:
	// none. RandomSeed seeds them; 0: from the clock.
	RandomRate float64
	RandomSeed int64
	// AckTimeout: see server.Options (0: 10 s).
	AckTimeout time.Duration
	// ShutdownTimeout bounds each step of Shutdown (0: 10 s).
	ShutdownTimeout time.Duration
	// MetricsListen is the address of the Prometheus metrics endpoint
	// (GET /metrics); empty: none.
	MetricsListen string
	Logger        *log.Logger
}

// ErrUndelivered is returned by Shutdown when the broker did not take every
// queued event in time.
var ErrUndelivered = errors.New("events not delivered")

// App is a running mock.
type App struct {
	opts   Options
	log    *log.Logger
	store  *store.Store
	pub    *publisher.Publisher
	srv    *server.Server
	health *health.Server
	grpc   *grpc.Server
	lis    net.Listener
	// metrics counts lookups always; metricsServer serves them when
	// MetricsListen is set.
	metrics       *metrics.Metrics
	metricsServer *metrics.Server

	stopBackground context.CancelFunc // ends the background goroutines
	background     sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start opens the store, connects the publisher (lazily: the broker may be
// down) and serves gRPC on opts.GRPCListen.
func Start(opts Options) (a *App, err error) {
	if opts.Logger == nil {
		opts.Logger = log.Default()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if len(opts.Brokers) == 0 {
		return nil, errors.New("no Kafka brokers")
	}
	if opts.RandomRate < 0 {
		return nil, errors.New("negative random rate")
	}
	a = &App{opts: opts, log: opts.Logger}
	defer func() {
		if err != nil {
			a.closeResources()
		}
	}()

	if a.store, err = store.Open(opts.StorePath, a.log.Printf); err != nil {
		return nil, err
	}
	if a.pub, err = publisher.New(opts.Brokers, opts.Topic); err != nil {
		return nil, err
	}
	if a.lis, err = net.Listen("tcp", opts.GRPCListen); err != nil {
		return nil, err
	}

	a.health = health.NewServer()
	a.srv = server.New(a.store, a.pub, server.Options{
		AckTimeout: opts.AckTimeout, Health: a.health, Logf: a.log.Printf,
	})
	a.metrics = metrics.New(a.store.Len, a.pub.Published)
	if opts.MetricsListen != "" {
		metricsLis, err := net.Listen("tcp", opts.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		a.metricsServer = a.metrics.Serve(metricsLis)
	}
	a.grpc = grpc.NewServer(grpc.UnaryInterceptor(a.metrics.UnaryInterceptor))
	a.srv.Register(a.grpc)
	healthpb.RegisterHealthServer(a.grpc, a.health) // overall status "": SERVING
	reflection.Register(a.grpc)
	go func() {
		if err := a.grpc.Serve(a.lis); err != nil {
			a.log.Printf("gRPC server stopped: %v", err)
		}
	}()

	// A helpful warning when the broker or the topic is not there; events
	// wait for the broker, and fail after a few retries on a missing topic.
	ctx, cancel := context.WithCancel(context.Background())
	a.stopBackground = cancel
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := a.pub.CheckTopic(ctx); err != nil && ctx.Err() != context.Canceled {
			a.log.Printf("warning: Kafka %v: %v", opts.Brokers, err)
		}
	}()

	if opts.RandomRate > 0 {
		a.startRandom(ctx)
	}
	return a, nil
}

// Addr is the bound gRPC address, host:port.
func (a *App) Addr() string { return a.lis.Addr().String() }

// MetricsAddr is the bound address of the metrics endpoint, "" when off.
func (a *App) MetricsAddr() string {
	if a.metricsServer == nil {
		return ""
	}
	return a.metricsServer.Addr()
}

// Store is the app's store (for tests).
func (a *App) Store() *store.Store { return a.store }

// startRandom makes random changes at opts.RandomRate until ctx ends. While
// the broker is down it pauses once 20000 events wait for it.
func (a *App) startRandom(ctx context.Context) {
	seed := a.opts.RandomSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	a.log.Printf("random changes: %g/s, seed %d", a.opts.RandomRate, seed)
	var failures atomic.Int64
	var lastReport atomic.Int64
	a.background.Add(1)
	go func() {
		defer a.background.Done()
		counts, err := randomchanges.Run(ctx, a.store, a.pub, randomchanges.NewGenerator(seed), randomchanges.Options{
			RatePerSecond: a.opts.RandomRate,
			Window:        20000,
			KeepGoing:     true,
			OnEventError: func(err error) {
				// At most one line a second, with a count.
				n := failures.Add(1)
				now := time.Now().Unix()
				if last := lastReport.Load(); now > last && lastReport.CompareAndSwap(last, now) {
					a.log.Printf("random changes: event failed (%d so far): %v", n, err)
				}
			},
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			a.log.Printf("random changes stopped: %v", err)
		}
		a.log.Printf("random changes: made %d (created %d, updated %d, deleted %d)",
			counts.Total(), counts.Created, counts.Updated, counts.Deleted)
	}()
}

// Shutdown stops random changes, stops gRPC gracefully (in-flight calls
// finish; forced after ShutdownTimeout), waits for the broker to acknowledge
// the events still queued (at most ShutdownTimeout), and closes the store.
// Events the broker did not take in time are lost (their changes are kept).
// Later calls return the first one's result.
func (a *App) Shutdown() error {
	a.shutdownOnce.Do(func() { a.shutdownErr = a.shutdown() })
	return a.shutdownErr
}

func (a *App) shutdown() error {
	a.stopBackground()
	a.srv.StopRandomChanges()
	a.background.Wait()
	a.health.Shutdown()

	stopped := make(chan struct{})
	go func() {
		a.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(a.opts.ShutdownTimeout):
		a.log.Printf("gRPC calls still running after %v: stopping them", a.opts.ShutdownTimeout)
		a.grpc.Stop()
		<-stopped
	}

	var err error
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.ShutdownTimeout)
	defer cancel()
	if ferr := a.pub.Flush(ctx); ferr != nil {
		err = fmt.Errorf("%w: the broker did not acknowledge %d events: %v", ErrUndelivered, a.pub.Buffered(), ferr)
	}
	if cerr := a.closeResources(); err == nil {
		err = cerr
	}
	return err
}

func (a *App) closeResources() error {
	if a.metricsServer != nil {
		_ = a.metricsServer.Close()
	}
	if a.lis != nil && a.grpc == nil {
		a.lis.Close()
	}
	if a.pub != nil {
		a.pub.Close()
	}
	if a.store != nil {
		return a.store.Close()
	}
	return nil
}
