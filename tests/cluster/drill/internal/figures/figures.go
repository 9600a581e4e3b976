// Package figures turns the attempts of requests.csv and the fault marks of
// the drill into the figures clients saw: per fault and kind of request,
// attempts, errors, stale reads, how long after the kill errors stopped, and
// the longest run of errors.
//
// Windows: "baseline" from the first attempt to the first kill; each fault
// from its kill to the next fault's kill, the last to the end of the
// attempts. An attempt belongs to the window in which its outcome was seen
// (start + latency): an attempt in flight when a component is killed and
// failing because of it counts against that fault.
package figures

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"segments/tests/drill/internal/record"
)

// MarksHeader is the marks file's header (CSV, written by scripts/cluster.sh).
var MarksHeader = []string{"fault", "kill_ms", "healthy_ms", "rejoined_ms"}

// Mark is one fault: when it was injected, when the cluster answered
// healthily without the component, when the component was back (0: not
// given).
type Mark struct {
	Fault      string
	KillMs     int64
	HealthyMs  int64
	RejoinedMs int64
}

// KindAll names the row over every kind of request.
const KindAll = "all"

// KindFigures are one kind's figures in one window.
type KindFigures struct {
	Kind     string `json:"kind"`
	Attempts int    `json:"attempts"`
	// Errors counts outcomes error and rejected; Rejected the latter alone.
	Errors   int `json:"errors"`
	Rejected int `json:"rejected"`
	// Stale counts reads answered wrongly (outcome stale). They are answers,
	// not errors: not in Errors, and like an ok they end a run of errors and
	// do not move the recovery.
	Stale int `json:"stale"`
	// RecoveryMs: end of the window's last failed attempt - the kill; 0
	// without errors; absent for the baseline.
	RecoveryMs *int64 `json:"recovery_ms,omitempty"`
	// LongestErrorStreakMs: over the runs of consecutive failed attempts
	// (in the order their outcomes were seen), the longest span from a run's
	// first attempt's start to its last attempt's end; 0 without errors.
	// For "all", the longest of the kinds' (in a merged order, the kinds that
	// kept working, such as the mock's user events, would cut every run).
	LongestErrorStreakMs int64 `json:"longest_error_streak_ms"`
}

// Window is one fault's (or the baseline's) figures.
type Window struct {
	Name    string `json:"name"`
	StartMs int64  `json:"start_ms"`
	EndMs   int64  `json:"end_ms"` // exclusive
	// From the marks: healthy_ms - kill_ms and rejoined_ms - kill_ms.
	HealthyAfterMs  *int64        `json:"healthy_after_ms,omitempty"`
	RejoinedAfterMs *int64        `json:"rejoined_after_ms,omitempty"`
	Kinds           []KindFigures `json:"kinds"` // record.Kinds order, then "all"
}

// Result is figures.json.
type Result struct {
	Windows []Window `json:"windows"`
}

// ParseMarks reads the marks file: the header, then one fault a line in
// time order; healthy_ms and rejoined_ms may be empty (unknown).
func ParseMarks(r io.Reader) ([]Mark, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var marks []Mark
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != strings.Join(MarksHeader, ",") {
		return nil, fmt.Errorf("marks: first line must be %s", strings.Join(MarksHeader, ","))
	}
	for i, line := range lines[1:] {
		n := i + 2
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != len(MarksHeader) {
			return nil, fmt.Errorf("marks:%d: %d fields, want %d", n, len(f), len(MarksHeader))
		}
		m := Mark{Fault: strings.TrimSpace(f[0])}
		if m.Fault == "" {
			return nil, fmt.Errorf("marks:%d: empty fault name", n)
		}
		var times [3]int64
		for j, s := range f[1:] {
			s = strings.TrimSpace(s)
			if s == "" && j > 0 {
				continue
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("marks:%d: %s %q is not a Unix time in ms", n, MarksHeader[j+1], s)
			}
			times[j] = v
		}
		m.KillMs, m.HealthyMs, m.RejoinedMs = times[0], times[1], times[2]
		if (m.HealthyMs != 0 && m.HealthyMs < m.KillMs) || (m.RejoinedMs != 0 && m.RejoinedMs < m.KillMs) {
			return nil, fmt.Errorf("marks:%d: healthy_ms and rejoined_ms must not precede kill_ms", n)
		}
		if len(marks) > 0 && m.KillMs <= marks[len(marks)-1].KillMs {
			return nil, fmt.Errorf("marks:%d: kill_ms %d not after the previous fault's %d (want time order)",
				n, m.KillMs, marks[len(marks)-1].KillMs)
		}
		marks = append(marks, m)
	}
	return marks, nil
}

// Compute makes the figures; reqs in any order.
func Compute(reqs []record.Request, marks []Mark) Result {
	sorted := slices.Clone(reqs)
	slices.SortStableFunc(sorted, func(a, b record.Request) int {
		return cmp.Or(cmp.Compare(a.EndMs(), b.EndMs()), cmp.Compare(a.TMs, b.TMs))
	})
	var first, last int64
	if len(sorted) > 0 {
		first, last = sorted[0].EndMs(), sorted[len(sorted)-1].EndMs()+1
	}
	var wins []Window
	baseEnd := last
	if len(marks) > 0 {
		baseEnd = marks[0].KillMs
	}
	wins = append(wins, Window{Name: "baseline", StartMs: min(first, baseEnd), EndMs: baseEnd})
	for i, m := range marks {
		end := max(last, m.KillMs)
		if i+1 < len(marks) {
			end = marks[i+1].KillMs
		}
		w := Window{Name: m.Fault, StartMs: m.KillMs, EndMs: end}
		if m.HealthyMs != 0 {
			w.HealthyAfterMs = ptr(m.HealthyMs - m.KillMs)
		}
		if m.RejoinedMs != 0 {
			w.RejoinedAfterMs = ptr(m.RejoinedMs - m.KillMs)
		}
		wins = append(wins, w)
	}
	for i := range wins {
		w := &wins[i]
		lo, _ := slices.BinarySearchFunc(sorted, w.StartMs, func(r record.Request, t int64) int { return cmp.Compare(r.EndMs(), t) })
		hi, _ := slices.BinarySearchFunc(sorted, w.EndMs, func(r record.Request, t int64) int { return cmp.Compare(r.EndMs(), t) })
		if i == 0 {
			lo = 0 // the baseline starts with the first attempt
		}
		in := sorted[lo:hi]
		var longest int64
		for _, kind := range append(slices.Clone(record.Kinds), KindAll) {
			var sel []record.Request
			for _, r := range in {
				if kind == KindAll || r.Kind == kind {
					sel = append(sel, r)
				}
			}
			kf := kindFigures(kind, sel)
			if kind == KindAll {
				kf.LongestErrorStreakMs = longest
			}
			longest = max(longest, kf.LongestErrorStreakMs)
			if i > 0 {
				rec := int64(0)
				if kf.Errors > 0 {
					rec = lastErrorEnd(sel) - w.StartMs
				}
				kf.RecoveryMs = ptr(rec)
			}
			w.Kinds = append(w.Kinds, kf)
		}
	}
	return Result{Windows: wins}
}

func ptr(v int64) *int64 { return &v }

// failed: no answer, or a refusal; an answer (ok or stale) is not.
func failed(r record.Request) bool { return r.Outcome == record.Error || r.Outcome == record.Rejected }

// kindFigures counts sel, which is in the order outcomes were seen.
func kindFigures(kind string, sel []record.Request) KindFigures {
	kf := KindFigures{Kind: kind, Attempts: len(sel)}
	runStart := int64(-1)
	for _, r := range sel {
		if r.Outcome == record.Stale {
			kf.Stale++
		}
		if !failed(r) {
			runStart = -1
			continue
		}
		kf.Errors++
		if r.Outcome == record.Rejected {
			kf.Rejected++
		}
		if runStart < 0 {
			runStart = r.TMs
		}
		runStart = min(runStart, r.TMs)
		kf.LongestErrorStreakMs = max(kf.LongestErrorStreakMs, r.EndMs()-runStart)
	}
	return kf
}

func lastErrorEnd(sel []record.Request) int64 {
	var t int64
	for _, r := range sel {
		if failed(r) {
			t = max(t, r.EndMs())
		}
	}
	return t
}

// WriteJSON writes figures.json's content.
func (res Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// WriteTable prints the figures as an aligned table.
func (res Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "window\tlength_s\thealthy_after_s\tback_after_s\tkind\tattempts\terrors\trejected\tstale\trecovery_s\tlongest_error_streak_s\t")
	for _, win := range res.Windows {
		for i, k := range win.Kinds {
			name, length, healthy, back := "", "", "", ""
			if i == 0 {
				name = win.Name
				length = seconds(ptr(win.EndMs - win.StartMs))
				healthy, back = seconds(win.HealthyAfterMs), seconds(win.RejoinedAfterMs)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t\n", name, length, healthy, back, k.Kind,
				k.Attempts, k.Errors, k.Rejected, k.Stale, seconds(k.RecoveryMs), seconds(&k.LongestErrorStreakMs))
		}
	}
	return tw.Flush()
}

func seconds(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return strconv.FormatFloat(float64(*ms)/1000, 'f', 1, 64)
}
