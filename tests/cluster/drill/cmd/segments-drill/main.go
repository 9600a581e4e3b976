// segments-drill: the client side of the cluster's fault drill
// (scripts/cluster.sh drill, issue 19).
//
//	load     mixed load through HAProxy until SIGINT/SIGTERM or -duration:
//	         writes with idempotency keys (REST), reads (REST and gRPC), user
//	         events (the mock); every attempt in requests.csv, every
//	         acknowledged write in acked.csv, refused ones in rejected.csv,
//	         given-up ones in given_up.csv; answers of reads that contradict
//	         settled acknowledged writes in stale.csv
//	check    every instance's answers against the acknowledged writes;
//	         expected.csv, expected_events.csv and mock_users.csv for the SQL
//	         checks; exit 1 on a mismatch, or if the load gave up or had
//	         refused a write or saw a stale read
//	figures  errors, stale reads and recovery per fault from requests.csv and
//	         a marks file
//
// Run `segments-drill SUBCOMMAND -h` for the flags. Exit status: 0 done, 1
// failed (check: a mismatch), 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"segments/tests/drill/internal/api"
	"segments/tests/drill/internal/check"
	"segments/tests/drill/internal/figures"
	"segments/tests/drill/internal/load"
	"segments/tests/drill/internal/record"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "load":
		err = runLoad(ctx, os.Args[2:])
	case "check":
		err = runCheck(ctx, os.Args[2:])
	case "figures":
		err = runFigures(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "segments-drill %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: segments-drill load|check|figures [flags] (-h for each)")
	os.Exit(2)
}

func parse(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "segments-drill %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		os.Exit(2)
	}
}

func required(fs *flag.FlagSet, names ...string) {
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			fmt.Fprintf(os.Stderr, "segments-drill %s: -%s is required\n", fs.Name(), n)
			os.Exit(2)
		}
	}
}

var runIDPattern = regexp.MustCompile(`^[0-9a-f]{8}$`)

func runLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	httpAddr := fs.String("http", "", "HOST:PORT of the REST front (HAProxy to the gateways)")
	grpcAddr := fs.String("grpc", "", "HOST:PORT of the gRPC front (HAProxy to the servers)")
	mockAddr := fs.String("usermock", "", "HOST:PORT of the mock's admin gRPC (usermock.v1.UserMockAdmin)")
	tokenFile := fs.String("token-file", "", "file holding an admin JWT")
	out := fs.String("out", "", "directory for the output files")
	users := fs.Int("users", 100, "load users (created in the mock)")
	rate := fs.Float64("rate", 60, "reads + writes per second")
	writeShare := fs.Float64("write-share", 0.5, "share of -rate that are writes")
	ttlShare := fs.Float64("ttl-share", 0.3, "share of adds with a TTL (2..6 s)")
	churn := fs.Float64("churn-rate", 3, "user events per second through the mock (0: none)")
	seed := fs.Uint64("seed", 1, "seed of the random choices")
	runID := fs.String("run-id", "", "8 lowercase hex digits naming this run's segments and users (default: from the clock)")
	duration := fs.Duration("duration", 0, "load this long (0: until SIGINT/SIGTERM)")
	setupTimeout := fs.Duration("setup-timeout", 2*time.Minute, "deadline to create segments and users and see the users arrive")
	giveUp := fs.Duration("give-up", 120*time.Second, "after the stop, retry writes under way this long")
	parse(fs, args)
	required(fs, "http", "grpc", "usermock", "token-file", "out")
	if *users < 1 || *rate <= 0 || *writeShare < 0 || *writeShare > 1 || *ttlShare < 0 || *ttlShare > 1 || *churn < 0 {
		fmt.Fprintln(os.Stderr, "segments-drill load: need -users >= 1, -rate > 0, -write-share and -ttl-share in 0..1, -churn-rate >= 0")
		os.Exit(2)
	}
	if *runID == "" {
		*runID = fmt.Sprintf("%08x", uint32(time.Now().Unix()))
	} else if !runIDPattern.MatchString(*runID) {
		fmt.Fprintln(os.Stderr, "segments-drill load: -run-id must be 8 lowercase hex digits")
		os.Exit(2)
	}
	token, err := api.ReadToken(*tokenFile)
	if err != nil {
		return err
	}
	sum, err := load.Run(ctx, load.Config{
		HTTPAddr: *httpAddr, GRPCAddr: *grpcAddr, MockAddr: *mockAddr, Token: token, OutDir: *out,
		RunID: *runID, Users: *users, Rate: *rate, WriteShare: *writeShare, TTLShare: *ttlShare, ChurnRate: *churn,
		Seed: *seed, Duration: *duration, SetupTimeout: *setupTimeout, GiveUpAfter: *giveUp, Log: os.Stderr,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "segments-drill load: run %s done in %.0fs: writes %d acked (%d attempts, %d rejected, %d given up, %d skipped), "+
		"reads %d (%d errors, %d stale, %d skipped; pairs %d compared, %d unsettled), user events %d (%d errors); files in %s\n",
		sum.RunID, sum.Elapsed.Seconds(), sum.Acked, sum.WriteAttempts, sum.Rejected, sum.GivenUp, sum.SkippedWrites,
		sum.Reads, sum.ReadErrors, sum.StaleReads, sum.SkippedReads, sum.PairsCompared, sum.PairsSkipped,
		sum.UserEvents, sum.UserEventErrors, *out)
	return nil
}

func runCheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	out := fs.String("out", "", "the load's output directory (the check's files are written there too)")
	instances := fs.String("instances", "", "HOST:PORT,... of every server's gRPC, directly")
	tokenFile := fs.String("token-file", "", "file holding an admin JWT")
	mockAddr := fs.String("usermock", "", "HOST:PORT of the mock's admin gRPC (for mock_users.csv)")
	timeout := fs.Duration("timeout", 60*time.Second, "deadline for the instances to be healthy")
	parse(fs, args)
	required(fs, "out", "instances", "token-file", "usermock")
	token, err := api.ReadToken(*tokenFile)
	if err != nil {
		return err
	}
	var addrs []string
	for _, a := range strings.Split(*instances, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	ok, err := check.Run(ctx, check.Config{OutDir: *out, Instances: addrs, Token: token, MockAddr: *mockAddr,
		Timeout: *timeout, Log: os.Stdout, Convergence: 3 * time.Second})
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("FAILED")
	}
	fmt.Println("check: ok")
	return nil
}

func runFigures(args []string) error {
	fs := flag.NewFlagSet("figures", flag.ContinueOnError)
	out := fs.String("out", "", "the load's output directory (figures.json is written there)")
	marksFile := fs.String("marks", "", "CSV fault,kill_ms,healthy_ms,rejoined_ms, one fault a line in time order")
	parse(fs, args)
	required(fs, "out", "marks")
	reqs, err := record.ReadRequests(filepath.Join(*out, record.RequestsFile))
	if err != nil {
		return err
	}
	f, err := os.Open(*marksFile)
	if err != nil {
		return err
	}
	marks, err := figures.ParseMarks(f)
	f.Close()
	if err != nil {
		return err
	}
	res := figures.Compute(reqs, marks)
	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	jf, err := os.Create(filepath.Join(*out, "figures.json"))
	if err != nil {
		return err
	}
	if err := res.WriteJSON(jf); err != nil {
		jf.Close()
		return err
	}
	return jf.Close()
}
