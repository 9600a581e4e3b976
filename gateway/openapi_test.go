package gateway

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The OpenAPI document's promises that hold for every operation, checked on
// the document the gateway serves (tests/e2e/schemathesis.sh holds the
// server to it).

type openapiDoc struct {
	Produces            []string `json:"produces"`
	SecurityDefinitions map[string]struct {
		Type string `json:"type"`
		In   string `json:"in"`
		Name string `json:"name"`
	} `json:"securityDefinitions"`
	Security    []map[string][]string                  `json:"security"`
	Paths       map[string]map[string]openapiOperation `json:"paths"`
	Definitions map[string]struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	} `json:"definitions"`
}

type openapiOperation struct {
	OperationID string                 `json:"operationId"`
	Security    *[]map[string][]string `json:"security"`
	Produces    []string               `json:"produces"`
	Parameters  []struct {
		Name     string   `json:"name"`
		In       string   `json:"in"`
		Required bool     `json:"required"`
		Pattern  string   `json:"pattern"`
		Minimum  *float64 `json:"minimum"`
		Maximum  *float64 `json:"maximum"`
	} `json:"parameters"`
	Responses map[string]struct {
		Schema *struct {
			Ref string `json:"$ref"`
		} `json:"schema"`
		Links map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"x-links"`
	} `json:"responses"`
}

func servedDoc(t *testing.T) openapiDoc {
	t.Helper()
	h := newHarness(t, Options{})
	r := h.do(t, http.MethodGet, "/swagger/doc.json", "")
	var doc openapiDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("doc.json: %v", err)
	}
	return doc
}

const envelopeRef = "#/definitions/v1RestErrorResponse"

func TestOpenAPIOperationsDeclareTheirAnswers(t *testing.T) {
	doc := servedDoc(t)
	ids := map[string]bool{}
	for _, ops := range doc.Paths {
		for _, op := range ops {
			ids[op.OperationID] = true
		}
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			name := strings.ToUpper(method) + " " + path
			rpc := op.OperationID[strings.Index(op.OperationID, "_")+1:]
			var codes []string
			for code := range op.Responses {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			success := codes[0]
			if isRead(rpc) {
				if success != "200" || op.Responses["200"].Schema == nil {
					t.Errorf("%s (a read): first answer %s, want 200 with a schema", name, success)
				}
			} else if success != "204" || op.Responses["204"].Schema != nil {
				t.Errorf("%s (a mutation): first answer %s, want 204 without a schema", name, success)
			}
			for _, code := range codes[1:] {
				if code[0] == '2' {
					t.Errorf("%s: two successes, %s and %s", name, success, code)
				} else if s := op.Responses[code].Schema; s == nil || s.Ref != envelopeRef {
					t.Errorf("%s: %s is not the error envelope", name, code)
				}
			}
			for _, code := range []string{"400", "500", "503"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s: no %s", name, code)
				}
			}
			hasBody := false
			for _, p := range op.Parameters {
				hasBody = hasBody || p.In == "body"
			}
			if _, ok := op.Responses["413"]; ok != hasBody {
				t.Errorf("%s: declares 413 %v, has a body %v", name, ok, hasBody)
			}
			produces := op.Produces
			if produces == nil {
				produces = doc.Produces
			}
			if !contains(produces, "application/json") {
				t.Errorf("%s: produces %v, without application/json for its errors", name, produces)
			}
			for code, r := range op.Responses {
				for link, target := range r.Links {
					if !ids[target.OperationID] {
						t.Errorf("%s: link %s of %s names no operation: %q", name, link, code, target.OperationID)
					}
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The patterns of slugs and user ids say what the server accepts
// (server/src/domain: validation.cc DescribeSlugProblem, user_id.cc).
func TestOpenAPIPatternsOfSlugsAndUserIDs(t *testing.T) {
	doc := servedDoc(t)
	pattern := func(definition, property string) *regexp.Regexp {
		t.Helper()
		var p struct {
			Pattern string `json:"pattern"`
			Items   *struct {
				Pattern string `json:"pattern"`
			} `json:"items"`
		}
		if err := json.Unmarshal(doc.Definitions[definition].Properties[property], &p); err != nil {
			t.Fatalf("%s.%s: %v", definition, property, err)
		}
		if p.Items != nil {
			p.Pattern = p.Items.Pattern
		}
		if p.Pattern == "" {
			t.Fatalf("%s.%s has no pattern", definition, property)
		}
		return regexp.MustCompile(p.Pattern)
	}
	check := func(re *regexp.Regexp, what string, good, bad []string) {
		t.Helper()
		for _, s := range good {
			if !re.MatchString(s) {
				t.Errorf("%s %q: refused by %s", what, s, re)
			}
		}
		for _, s := range bad {
			if re.MatchString(s) {
				t.Errorf("%s %q: accepted by %s", what, s, re)
			}
		}
	}
	long := strings.Repeat("a", 128)
	slugsGood := []string{"A", "0", "AVITO_VOICE_MESSAGES", "a.b-c_d", "9-", long}
	slugsBad := []string{"", "_a", ".a", "-a", "a b", "a/b", "é", "a\n", long + "a"}
	check(pattern("v1CreateSegmentRequest", "slug"), "slug", slugsGood, slugsBad)
	check(pattern("v1CreateSegmentRequest", "includeSegments"), "slug", slugsGood, slugsBad)
	check(pattern("UpdateUserSegmentsRequestSegmentToAdd", "segmentSlug"), "slug", slugsGood, slugsBad)

	idsGood := []string{"0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", "0B7F9F5E-1C2D-4E3F-8A9B-0C1D2E3F4A5B", "0", "7", "1000",
		"999999999999999999", "1000000000000000000", "9223372036854775799", "9223372036854775807", "8999999999999999999"}
	idsBad := []string{"", "01", "00", "-1", "+1", " 1", "1 ", "1e3", "1.0", "9223372036854775808", "9223372036854775810",
		"9300000000000000000", "10000000000000000000", "0b7f9f5e1c2d4e3f8a9b0c1d2e3f4a5b", "{0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b}",
		"0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5g", "0b7f9f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5", "user-1"}
	check(pattern("v1CreateUserRequest", "userID"), "user id", idsGood, idsBad)
	check(pattern("v1AddSegmentToUsersRequest", "userIDs"), "user id", idsGood, idsBad)
}

// Every required body field is listed as required, and every query
// parameter with a range has both ends.
func TestOpenAPIRequiredFieldsAndRanges(t *testing.T) {
	doc := servedDoc(t)
	required := map[string][]string{
		"v1CreateSegmentRequest":                   {"slug"},
		"v1DeleteSegmentRequest":                   {"slug"},
		"v1UpdateUserSegmentsRequest":              {"userID"},
		"UpdateUserSegmentsRequestSegmentToAdd":    {"segmentSlug"},
		"UpdateUserSegmentsRequestSegmentToRemove": {"segmentSlug"},
		"v1UpdateSegmentPercentRequest":            {"percentToFill", "slug"},
		"v1AddSegmentToUsersRequest":               {"slug", "userIDs"},
		"v1RemoveSegmentFromUsersRequest":          {"slug", "userIDs"},
		"v1CreateUserRequest":                      {"userID"},
		"v1UpdateUserRequest":                      {"status", "userID"},
		"v1DeleteUserRequest":                      {"userID"},
	}
	for definition, want := range required {
		got := append([]string(nil), doc.Definitions[definition].Required...)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: required %v, want %v", definition, got, want)
		}
	}
	ranges := map[string][2]float64{
		"GET /segments/get-history-report-link month": {1, 12},
		"GET /segments/get-history-report-link year":  {1970, 9999},
		"GET /segments/list pageSize":                 {0, 1000},
		"GET /segments/list-members pageSize":         {0, 10000},
		"GET /segments/get-user-history pageSize":     {0, 1000},
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for _, p := range op.Parameters {
				key := strings.ToUpper(method) + " " + path + " " + p.Name
				want, ok := ranges[key]
				if !ok {
					continue
				}
				delete(ranges, key)
				if p.Minimum == nil || p.Maximum == nil || *p.Minimum != want[0] || *p.Maximum != want[1] {
					t.Errorf("%s: range %v..%v, want %v", key, p.Minimum, p.Maximum, want)
				}
			}
		}
	}
	for key := range ranges {
		t.Errorf("%s: no such query parameter", key)
	}
}

// Swagger UI's Authorize button needs the scheme; clients need to know every
// operation but the report download may answer 401 and 403.
func TestOpenAPIDeclaresTheBearerSchemeAnd401And403(t *testing.T) {
	doc := servedDoc(t)
	scheme, ok := doc.SecurityDefinitions["bearer"]
	if !ok || scheme.Type != "apiKey" || scheme.In != "header" || scheme.Name != "Authorization" {
		t.Fatalf("securityDefinitions.bearer = %+v (present %v), want an Authorization header", scheme, ok)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("security = %v, want [{bearer: []}] for every operation", doc.Security)
	}
	open := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			name := strings.ToUpper(method) + " " + path
			_, has401 := op.Responses["401"]
			_, has403 := op.Responses["403"]
			if op.OperationID == "HistoryService_DownloadHistoryReport" {
				open++
				if op.Security == nil || len(*op.Security) != 0 || has401 || has403 {
					t.Errorf("%s: the download is open (security [] and no 401/403), got security %v", name, op.Security)
				}
				continue
			}
			if op.Security != nil || !has401 || !has403 {
				t.Errorf("%s: want the document's bearer security and 401 and 403 answers", name)
			}
		}
	}
	if open != 1 {
		t.Errorf("%d open operations, want 1 (the report download)", open)
	}
}
