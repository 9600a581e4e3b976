package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"segments/gateway/internal/middleware"
)

// callAs sends a request with role's token ("" for none, or a whole
// Authorization value when role starts with "Bearer " or "Basic ").
func callAs(t *testing.T, role, method, path, body string) response {
	t.Helper()
	authorization := noAuthorization
	switch {
	case role == "":
	case strings.HasPrefix(role, "Bearer ") || strings.HasPrefix(role, "Basic "):
		authorization = role
	default:
		authorization = "Bearer " + tokens[role]
	}
	r, err := fetchWith(baseURL, method, path, body, http.Header{"Authorization": {authorization}})
	if err != nil {
		t.Fatalf("%s %s as %q: %v", method, path, role, err)
	}
	if r.status >= 400 {
		checkEnvelope(t, r)
	}
	return r
}

func TestAuthNoOrBadTokenIs401WithABearerChallenge(t *testing.T) {
	reset(t)
	for _, authorization := range []string{"", "Basic YWRtaW46YWRtaW4=", "Bearer not-a-jwt", "Bearer " + tokens["admin"] + "x"} {
		for _, c := range []struct{ method, path, body string }{
			{http.MethodGet, "/segments/get-for-user?userID=1", ""},
			{http.MethodPost, "/segments/create", `{"slug":"AVITO_DISCOUNT_30"}`},
			{http.MethodGet, "/segments/stream-members?slug=AVITO_DISCOUNT_30", ""},
		} {
			r := callAs(t, authorization, c.method, c.path, c.body)
			wantError(t, r, http.StatusUnauthorized, "unauthenticated")
			if got := r.header.Get("WWW-Authenticate"); got != middleware.BearerChallengeValue {
				t.Errorf("%s %s with %.12q: WWW-Authenticate = %q", c.method, c.path, authorization, got)
			}
		}
	}
	if n := queryInt(t, "SELECT count(*) FROM segments"); n != 0 {
		t.Fatalf("%d segments made by refused calls", n)
	}
}

func TestAuthRolesThroughTheGateway(t *testing.T) {
	reset(t)
	createUser(t, "1")
	// The service role reads a user's segments and does nothing else.
	wantJSON(t, callAs(t, "service", http.MethodGet, "/segments/get-for-user?userID=1", ""), `{"segments":[]}`)
	wantOneError(t, callAs(t, "service", http.MethodPost, "/segments/create", `{"slug":"AVITO_DISCOUNT_30"}`),
		http.StatusForbidden, "permission_denied", "the analyst role (or a role above it) is needed for this call")
	wantError(t, callAs(t, "service", http.MethodGet, "/segments/list", ""), http.StatusForbidden, "permission_denied")
	// Support reads everything, changes nothing.
	if r := callAs(t, "support", http.MethodGet, "/segments/list", ""); r.status != http.StatusOK {
		t.Fatalf("support: list: %s", r)
	}
	wantError(t, callAs(t, "support", http.MethodPost, "/segments/change-for-user",
		`{"userID":"1","segmentsToAdd":[{"segmentSlug":"X"}]}`), http.StatusForbidden, "permission_denied")
	// Analysts change segments and memberships, not the user replica.
	wantNoContent(t, callAs(t, "analyst", http.MethodPost, "/segments/create", `{"slug":"AVITO_DISCOUNT_30"}`))
	wantNoContent(t, callAs(t, "analyst", http.MethodPost, "/segments/change-for-user",
		`{"userID":"1","segmentsToAdd":[{"segmentSlug":"AVITO_DISCOUNT_30"}]}`))
	wantOneError(t, callAs(t, "analyst", http.MethodPost, "/segments/create-user", `{"userID":"2"}`),
		http.StatusForbidden, "permission_denied", "the admin role (or a role above it) is needed for this call")
	wantNoContent(t, callAs(t, "admin", http.MethodPost, "/segments/create-user", `{"userID":"2"}`))
	wantSegments(t, "1", "AVITO_DISCOUNT_30")
}

func TestAuthReportLinksStayCapabilities(t *testing.T) {
	reset(t)
	createUser(t, "1")
	createSegment(t, "AVITO_DISCOUNT_30")
	addSegments(t, "1", "AVITO_DISCOUNT_30")
	now := time.Now().UTC()
	query := "userID=1&year=" + now.Format("2006") + "&month=" + strings.TrimLeft(now.Format("01"), "0")
	wantError(t, callAs(t, "", http.MethodGet, "/segments/get-history-report-link?"+query, ""),
		http.StatusUnauthorized, "unauthenticated")
	link := callAs(t, "support", http.MethodGet, "/segments/get-history-report-link?"+query, "")
	if link.status != http.StatusOK {
		t.Fatalf("support: report link: %s", link)
	}
	s := &stack{url: baseURL}
	url, _ := s.reportLink(t, query)
	// Downloaded without any token: the signed link is the proof.
	r := callAs(t, "", http.MethodGet, url.Path+"?"+url.RawQuery, "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "AVITO_DISCOUNT_30") {
		t.Fatalf("download without a token: %s", r)
	}
}
