package main

// Tests of the command itself: the test binary runs main when
// USERMOCK_TEST_RUN_MAIN is set, so flags, the "serving" line, signals and
// exit codes are checked on a real process.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	usermockv1 "segments/usermock/gen/usermock/v1"
	userservicev1 "segments/usermock/gen/userservice/v1"
	"segments/usermock/internal/kafkatest"
)

func TestMain(m *testing.M) {
	if os.Getenv("USERMOCK_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

type process struct {
	cmd   *exec.Cmd
	addr  string
	lines chan string // the rest of its log, closed at its end
}

var servingLine = regexp.MustCompile(`^usermock: serving gRPC on (127\.0\.0\.1:[0-9]+)$`)

// startMain runs the command with args and extra environment, and waits
// for its "serving gRPC on" line.
func startMain(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(cleanEnv(), append(env, "USERMOCK_TEST_RUN_MAIN=1")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan string, 1000)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range p.lines { // the reader logs nothing after the test
		}
		cmd.Wait()
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("[mock] %s", sc.Text())
			p.lines <- sc.Text()
		}
	}()
	timeout := time.After(20 * time.Second)
	for p.addr == "" {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatal("the mock exited before serving")
			}
			if m := servingLine.FindStringSubmatch(line); m != nil {
				p.addr = m[1]
			}
		case <-timeout:
			t.Fatal("no serving line within 20 s")
		}
	}
	return p
}

// stop sends sig and returns the exit code and the rest of the log.
func (p *process) stop(t *testing.T, sig syscall.Signal) (int, []string) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var rest []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.cmd.Wait()
				return p.cmd.ProcessState.ExitCode(), rest
			}
			rest = append(rest, line)
		case <-timeout:
			t.Fatalf("the mock did not exit within 30 s of %v", sig)
		}
	}
}

// cleanEnv is this process's environment without USERMOCK_ variables.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "USERMOCK_") })
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestServesReflectsStopsAndKeepsData(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	store := filepath.Join(t.TempDir(), "users.log")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Flags win over the environment (this USERMOCK_GRPC_LISTEN would fail).
	p := startMain(t, []string{"USERMOCK_GRPC_LISTEN=256.0.0.1:1", "USERMOCK_TOPIC=no-such-topic"},
		"--grpc-listen", "127.0.0.1:0", "--kafka-brokers", strings.Join(brokers, ","), "--topic", topic, "--store", store)
	conn := dial(t, p.addr)

	// grpcurl needs reflection; it lists every service.
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	for _, want := range []string{"userservice.v1.UserService", "usermock.v1.UserMockAdmin", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, not %s", services, want)
		}
	}
	stream.CloseSend()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", h, err)
	}

	const id = "e0000000-0000-4000-8000-000000000001"
	admin := usermockv1.NewUserMockAdminClient(conn)
	if _, err := admin.CreateUser(ctx, &usermockv1.CreateUserRequest{UserId: id}); err != nil {
		t.Fatal(err) // would fail on the env's missing topic
	}
	if _, err := admin.UpdateUser(ctx, &usermockv1.UpdateUserRequest{UserId: id, State: userservicev1.UserState_USER_STATE_EXCLUDED}); err != nil {
		t.Fatal(err)
	}
	if code, rest := p.stop(t, syscall.SIGTERM); code != 0 || !slices.Contains(rest, "usermock: stopped") {
		t.Fatalf("SIGTERM: exit %d, log %q", code, rest)
	}
	if got := kafkatest.Consume(t, brokers, topic, 2, 30*time.Second, time.Second); len(got) != 2 {
		t.Fatalf("%d events for 2 changes", len(got))
	}

	// Again, configured by the environment alone, then SIGINT.
	p = startMain(t, []string{"USERMOCK_GRPC_LISTEN=127.0.0.1:0", "USERMOCK_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"USERMOCK_TOPIC=" + topic, "USERMOCK_STORE=" + store})
	u, err := userservicev1.NewUserServiceClient(dial(t, p.addr)).GetUser(ctx, &userservicev1.GetUserRequest{UserId: id})
	if err != nil || u.GetState() != userservicev1.UserState_USER_STATE_EXCLUDED {
		t.Fatalf("after a restart: %v %v", u, err)
	}
	if code, _ := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("SIGINT: exit %d", code)
	}
}

// --log-format=json and --metrics-listen (no broker needed): JSON lines
// throughout, the metrics served where the log says.
func TestJSONLogAndMetrics(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--grpc-listen", "127.0.0.1:0", "--kafka-brokers", "127.0.0.1:1",
		"--log-format", "json", "--metrics-listen", "127.0.0.1:0")
	cmd.Env = append(cleanEnv(), "USERMOCK_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("[mock] %s", sc.Text())
			lines <- sc.Text()
		}
	}()
	metricsLine := regexp.MustCompile(`^serving metrics on (http://127\.0\.0\.1:[0-9]+/metrics)$`)
	var url string
	timeout := time.After(20 * time.Second)
	for url == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the mock exited")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not a JSON line: %q", line)
			}
			if m["time"] == nil || m["level"] == nil || m["message"] == nil {
				t.Fatalf("line without time, level or message: %q", line)
			}
			if match := metricsLine.FindStringSubmatch(m["message"].(string)); match != nil {
				url = match[1]
			}
		case <-timeout:
			t.Fatal("no metrics line within 20 s")
		}
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "segments_usermock_users 0") {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for line := range lines {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %q", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestBadConfigurationExits2(t *testing.T) {
	for name, tc := range map[string]struct {
		env  []string
		args []string
	}{
		"negative rate":   {args: []string{"--random-rate", "-1"}},
		"rate not number": {env: []string{"USERMOCK_RANDOM_RATE=fast"}},
		"seed not number": {env: []string{"USERMOCK_RANDOM_SEED=abc"}},
		"unknown flag":    {args: []string{"--frobnicate"}},
		"no brokers":      {args: []string{"--kafka-brokers", " , "}},
		"empty topic":     {args: []string{"--topic", ""}},
		"stray argument":  {args: []string{"extra"}},
		"bad log format":  {args: []string{"--log-format", "xml"}},
		"bad metrics":     {args: []string{"--metrics-listen", "nonsense"}},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append([]string{"--grpc-listen", "127.0.0.1:0"}, tc.args...)...)
			cmd.Env = append(cleanEnv(), append(tc.env, "USERMOCK_TEST_RUN_MAIN=1")...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit %d, want 2; output:\n%s", code, out)
			}
		})
	}
}
