// Command healthprobe is the container health check of the compose stack's
// own images, for images without a shell or curl (distroless):
//
//	healthprobe grpc HOST:PORT [SERVICE]  # grpc.health.v1.Health/Check answers SERVING
//	healthprobe http URL                  # GET URL answers 2xx
//
// It exits 0 when healthy and 1 otherwise, with the reason on stderr (Docker
// keeps the last few outputs: docker inspect --format '{{json .State.Health}}').
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "deadline of the whole check")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: healthprobe [-timeout D] grpc HOST:PORT [SERVICE] | http URL")
	}
	flag.Parse()
	args := flag.Args()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var err error
	switch {
	case len(args) == 2 && args[0] == "grpc":
		err = checkGRPC(ctx, args[1], "")
	case len(args) == 3 && args[0] == "grpc":
		err = checkGRPC(ctx, args[1], args[2])
	case len(args) == 2 && args[0] == "http":
		err = checkHTTP(ctx, args[1])
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}

// checkGRPC asks the standard gRPC health service (plaintext) about SERVICE
// ("" = the server as a whole).
func checkGRPC(ctx context.Context, addr, service string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("grpc %s: %w", addr, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc %s: status %s", addr, s)
	}
	return nil
}

func checkHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}
