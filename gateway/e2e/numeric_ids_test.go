package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The task statement's scenario, whose users are the numbers 1000, 1002 and
// 1004: users and segments are created, segments change for users, users
// read their segments, and the month's report has lines like
// "1000;AVITO_VOICE_MESSAGES;add;...". The UUID that ends in 1000 is another
// user all along.
func TestTaskScenarioWithNumericUsers(t *testing.T) {
	reset(t)
	s := startHistoryStack(t)
	year, month, from, to := monthOf(time.Now())
	const uuid1000 = "00000000-0000-0000-0000-000000001000"

	for _, user := range []string{"1000", "1002", "1004", uuid1000} {
		s.mutate(t, http.MethodPost, "/segments/create-user", `{"userID":"`+user+`"}`)
	}
	wantOneError(t, s.call(t, http.MethodPost, "/segments/create-user", `{"userID":"1000"}`),
		http.StatusConflict, "conflict", `userID: user "1000" already exists`)
	for _, slug := range []string{"AVITO_VOICE_MESSAGES", "AVITO_PERFORMANCE_VAS", "AVITO_DISCOUNT_30", "AVITO_DISCOUNT_50"} {
		s.mutate(t, http.MethodPost, "/segments/create", `{"slug":"`+slug+`"}`)
	}
	change := func(user, body string) {
		t.Helper()
		s.mutate(t, http.MethodPost, "/segments/change-for-user", `{"userID":"`+user+`",`+body+`}`)
	}
	change("1000", `"segmentsToAdd":[{"segmentSlug":"AVITO_VOICE_MESSAGES"},{"segmentSlug":"AVITO_PERFORMANCE_VAS"},{"segmentSlug":"AVITO_DISCOUNT_30"}]`)
	change("1002", `"segmentsToAdd":[{"segmentSlug":"AVITO_VOICE_MESSAGES"},{"segmentSlug":"AVITO_DISCOUNT_50"}]`)
	change("1004", `"segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30","secondsToBeInSegment":3600}]`)
	change("1000", `"segmentsToRemove":[{"segmentSlug":"AVITO_PERFORMANCE_VAS"}]`)
	change(uuid1000, `"segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_50"}]`)

	get := func(user, want string) {
		t.Helper()
		wantJSON(t, s.call(t, http.MethodGet, "/segments/get-for-user?userID="+user, ""), want)
	}
	get("1000", `{"segments":["AVITO_DISCOUNT_30","AVITO_VOICE_MESSAGES"]}`)
	get("1002", `{"segments":["AVITO_DISCOUNT_50","AVITO_VOICE_MESSAGES"]}`)
	get("1004", `{"segments":["AVITO_DISCOUNT_30"]}`)
	get(uuid1000, `{"segments":["AVITO_DISCOUNT_50"]}`)
	get("1006", `{"segments":[]}`)
	wantOneError(t, s.call(t, http.MethodPost, "/segments/change-for-user",
		`{"userID":"1006","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30"}]}`),
		http.StatusNotFound, "not_found", `userID: user "1006" does not exist`)

	// The replica holds each id once, in its canonical text.
	rows, err := db.Query(`SELECT id FROM users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if got, want := strings.Join(ids, ","), uuid1000+",1000,1002,1004"; got != want {
		t.Fatalf("users %s, want %s", got, want)
	}
	if y, m, _, _ := monthOf(time.Now()); y != year || m != month {
		t.Skip("the UTC month changed while the history was being built")
	}

	// The report of one user, then everyone's.
	events := history(t)
	var of1000 []historyRow
	for _, e := range events {
		if e.User == "1000" {
			of1000 = append(of1000, e)
		}
	}
	if len(of1000) != 4 || len(events) != 8 {
		t.Fatalf("history %v: want 8 events, 4 of user 1000", events)
	}
	fileName := fmt.Sprintf("segments-history-%04d-%02d-1000.csv", year, month)
	link, _ := s.reportLink(t, fmt.Sprintf("userID=1000&month=%d&year=%d", month, year))
	if got := link.Query().Get("userID"); got != "1000" {
		t.Fatalf("the link names user %q, want 1000", got)
	}
	report := download(t, s.url, link)
	rows1000 := reportRows(t, report, fileName, from, to)
	wantRows(t, "the report of user 1000", rows1000, of1000)
	for _, line := range []string{"1000;AVITO_VOICE_MESSAGES;add;", "1000;AVITO_PERFORMANCE_VAS;add;",
		"1000;AVITO_DISCOUNT_30;add;", "1000;AVITO_PERFORMANCE_VAS;remove;"} {
		if !strings.Contains(string(report.body), "\n"+line) {
			t.Fatalf("the report of user 1000 has no line starting %q:\n%s", line, report.body)
		}
	}
	link, _ = s.reportLink(t, fmt.Sprintf("month=%d&year=%d", month, year))
	wantRows(t, "the report of everyone", reportRows(t, download(t, s.url, link),
		fmt.Sprintf("segments-history-%04d-%02d.csv", year, month), from, to), events)

	// Removing the user 1000 leaves the UUID ...1000 alone.
	s.mutate(t, http.MethodDelete, "/segments/remove-user", `{"userID":"1000"}`)
	get("1000", `{"segments":[]}`)
	get(uuid1000, `{"segments":["AVITO_DISCOUNT_50"]}`)
	wantOneError(t, s.call(t, http.MethodDelete, "/segments/remove-user", `{"userID":"1000"}`),
		http.StatusNotFound, "not_found", `userID: user "1000" does not exist`)
}
