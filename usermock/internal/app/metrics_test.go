package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"
	"segments/usermock/internal/kafkatest"
)

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	return string(body)
}

// hasLine reports whether the exposition has this exact sample line.
func hasLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// No broker needed: users and lookups by code, with the broker down (no
// event acknowledged).
func TestMetricsEndpoint(t *testing.T) {
	m := start(t, Options{
		Brokers: []string{"127.0.0.1:1"}, Topic: "UserAction", MetricsListen: "127.0.0.1:0",
		AckTimeout: 300 * time.Millisecond, ShutdownTimeout: 300 * time.Millisecond,
	})
	addr := m.app.MetricsAddr()
	if addr == "" {
		t.Fatal("no metrics address")
	}
	ctx := context.Background()
	const id = "e0000000-0000-4000-8000-000000000001"
	if _, err := m.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetUser of nobody: %v", err)
	}
	// Kept although the event is not acknowledged.
	if _, err := m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id}); status.Code(err) != codes.Unavailable {
		t.Fatalf("CreateUser with the broker down: %v", err)
	}
	if _, err := m.users.GetUser(ctx, &userservicev1.GetUserRequest{UserId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.users.BatchGetUsers(ctx, &userservicev1.BatchGetUsersRequest{UserIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.admin.ListUsers(ctx, &usermockv1.ListUsersRequest{}); err != nil {
		t.Fatal(err)
	}
	text := metricsText(t, addr)
	for _, line := range []string{
		"segments_usermock_users 1",
		"segments_usermock_events_published_total 0",
		`segments_usermock_lookups_total{code="OK"} 2`,
		`segments_usermock_lookups_total{code="NOT_FOUND"} 1`,
	} {
		if !hasLine(text, line) {
			t.Errorf("no line %q in:\n%s", line, text)
		}
	}
}

func TestNoMetricsEndpointByDefault(t *testing.T) {
	m := start(t, Options{Brokers: []string{"127.0.0.1:1"}, Topic: "UserAction", ShutdownTimeout: 300 * time.Millisecond})
	if addr := m.app.MetricsAddr(); addr != "" {
		t.Fatalf("metrics on %s without MetricsListen", addr)
	}
}

// With the broker: each acknowledged event counts once.
func TestMetricsCountPublishedEvents(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 1)
	m := start(t, Options{Brokers: brokers, Topic: topic, MetricsListen: "127.0.0.1:0"})
	ctx := context.Background()
	for range 3 {
		if _, err := m.admin.CreateUser(ctx, &usermockv1.CreateUserRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	text := metricsText(t, m.app.MetricsAddr())
	if !hasLine(text, "segments_usermock_events_published_total 3") || !hasLine(text, "segments_usermock_users 3") {
		t.Fatalf("want 3 events and 3 users:\n%s", text)
	}
}
