// Package gateway serves the original HTTP API of the segments service by
// translating it to gRPC calls on the server (grpc-gateway, generated from
// proto/), with the contract's error envelope, Swagger UI and a health check
// of the upstream.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/httperr"
	"segments/gateway/internal/middleware"
	"segments/gateway/internal/report"
	"segments/gateway/internal/swagger"
)

// Options configure the gateway. Zero values take the defaults noted.
type Options struct {
	// Addr is the HTTP listen address (default ":8080"). Ignored when
	// Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr.
	Listener net.Listener
	// Upstream is the gRPC server's address, host:port. Required.
	Upstream string
	// UpstreamTimeout bounds each call to the upstream (default 10s), except
	// report downloads.
	UpstreamTimeout time.Duration
	// ReportTimeout bounds one report download (default 30m).
	ReportTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted (default 1 MiB).
	MaxBodyBytes int64
	// ShutdownTimeout is how long in-flight requests get once ctx is
	// cancelled (default 10s).
	ShutdownTimeout time.Duration
	// Logger receives access logs and lifecycle messages (default: JSON to
	// stderr).
	Logger *slog.Logger
}

func (o *Options) applyDefaults() error {
	if o.Upstream == "" {
		return errors.New("gateway: Upstream is required")
	}
	if o.Addr == "" {
		o.Addr = ":8080"
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = 10 * time.Second
	}
	if o.ReportTimeout <= 0 {
		o.ReportTimeout = 30 * time.Minute
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Run serves until ctx is cancelled, then stops accepting requests and lets
// in-flight ones finish within ShutdownTimeout.
func Run(ctx context.Context, opts Options) error {
	if err := opts.applyDefaults(); err != nil {
		return err
	}
	conn, err := grpc.NewClient(opts.Upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("gateway: upstream %q: %w", opts.Upstream, err)
	}
	defer conn.Close()

	handler, err := NewHandler(ctx, conn, opts)
	if err != nil {
		return err
	}
	listener := opts.Listener
	if listener == nil {
		if listener, err = net.Listen("tcp", opts.Addr); err != nil {
			return fmt.Errorf("gateway: listen on %s: %w", opts.Addr, err)
		}
	}
	server := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	opts.Logger.Info("gateway serving", "addr", listener.Addr().String(), "upstream", opts.Upstream)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	opts.Logger.Info("gateway shutting down", "grace", opts.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

// NewHandler builds the HTTP handler over an upstream connection: the API
// routes (with the upstream deadline), report downloads, /healthz and
// /swagger/, all behind access logs and the body limit.
func NewHandler(ctx context.Context, conn *grpc.ClientConn, opts Options) (http.Handler, error) {
	if err := opts.applyDefaults(); err != nil {
		return nil, err
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &compactJSON{runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}),
		runtime.WithErrorHandler(httperr.ErrorHandler),
		runtime.WithRoutingErrorHandler(httperr.RoutingErrorHandler),
		runtime.WithForwardResponseOption(noContentForMutations),
		runtime.WithHealthzEndpoint(grpc_health_v1.NewHealthClient(conn)),
		// Pass no HTTP headers on as gRPC metadata but the standard ones.
		runtime.WithIncomingHeaderMatcher(runtime.DefaultHeaderMatcher),
	)
	if err := segmentationv1.RegisterSegmentServiceHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	if err := segmentationv1.RegisterUserAdminServiceHandler(ctx, mux, conn); err != nil {
		return nil, err
	}
	if err := segmentationv1.RegisterHistoryServiceHandler(ctx, mux, conn); err != nil {
		return nil, err
	}

	root := http.NewServeMux()
	root.Handle("/swagger/", swagger.Handler())
	root.Handle("/swagger", swagger.Handler())
	// An exact path wins over "/": the generated handler of this route is
	// never reached.
	root.Handle(report.Path, report.Handler(segmentationv1.NewHistoryServiceClient(conn), opts.ReportTimeout, opts.Logger))
	root.Handle("/", middleware.Deadline(opts.UpstreamTimeout)(mux))
	return middleware.Chain(root,
		middleware.AccessLog(opts.Logger),
		middleware.LimitBody(opts.MaxBodyBytes),
		middleware.RequireUTF8Query,
	), nil
}

// compactJSON is protojson without the random spaces protojson adds on
// purpose, so that equal answers are equal bytes (clients, caches, docs),
// and with a strict decoder: a body is one JSON value and nothing else.
type compactJSON struct{ runtime.JSONPb }

// NewDecoder reads the whole body (LimitBody has bounded it already). An
// empty body decodes as io.EOF, which grpc-gateway treats as an empty
// request; data after the first JSON value is a parse error.
func (m *compactJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return io.EOF
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		var first json.RawMessage
		if err := dec.Decode(&first); err != nil {
			return err
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("unexpected data after the JSON value")
		}
		return m.JSONPb.Unmarshal(first, v)
	})
}

// NewEncoder writes compact bytes too (grpc-gateway uses it for /healthz).
func (m *compactJSON) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		data, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	})
}

func (m *compactJSON) Marshal(v any) ([]byte, error) {
	raw, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// noContentForMutations makes every successful mutation answer 204 with no
// body, as the original API did; reads (Get*, List*, Download*) answer 200.
// The body grpc-gateway writes next is discarded by net/http for a 204.
func noContentForMutations(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return nil
	}
	name := method[strings.LastIndex(method, "/")+1:]
	if strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List") || strings.HasPrefix(name, "Download") {
		return nil
	}
	w.Header().Del("Content-Type")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
