package decode

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
)

var lenient = protojson.UnmarshalOptions{DiscardUnknown: true}

type (
	toAdd    = segmentationv1.UpdateUserSegmentsRequest_SegmentToAdd
	toRemove = segmentationv1.UpdateUserSegmentsRequest_SegmentToRemove
)

func change(user string, add []*toAdd, remove ...string) *segmentationv1.UpdateUserSegmentsRequest {
	out := &segmentationv1.UpdateUserSegmentsRequest{UserId: user, SegmentsToAdd: add}
	for _, slug := range remove {
		out.SegmentsToRemove = append(out.SegmentsToRemove, &toRemove{SegmentSlug: slug})
	}
	return out
}

var deadline = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// changeCase is a change-for-user body and the request it must read as.
type changeCase struct {
	body string
	want *segmentationv1.UpdateUserSegmentsRequest
}

func wantChanges(t *testing.T, tests []changeCase) {
	t.Helper()
	for _, tc := range tests {
		got := &segmentationv1.UpdateUserSegmentsRequest{}
		if err := Body([]byte(tc.body), got, lenient); err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.body, got, tc.want)
		}
	}
}

// Keys match as encoding/json matches them, in nested messages and arrays
// of messages too; the proto names protojson takes still work; unknown keys
// are dropped.
func TestBodyKeysMatchAsEncodingJSON(t *testing.T) {
	tests := []changeCase{
		{`{"userID":"u"}`, change("u", nil)},
		{`{"userId":"u"}`, change("u", nil)},
		{`{"UserID":"u"}`, change("u", nil)},
		{`{"USERID":"u"}`, change("u", nil)},
		{`{"userid":"u"}`, change("u", nil)},
		{`{"user_id":"u"}`, change("u", nil)},
		{`{"USER_ID":"u"}`, change("u", nil)},
		{`{"\u0075serID":"u"}`, change("u", nil)},
		{`{"userID ":"u","user-id":"x","userIDs":"y"}`, change("", nil)},
		{`{"SEGMENTSTOADD":[{"SEGMENTSLUG":"A"},{"segmentslug":"B","SecondsToBeInSegment":300},` +
			`{"SegmentSlug":"C","DEADLINEFORSTAYINGINSEGMENT":"2030-01-02T03:04:05Z","colour":"red"}],` +
			`"segments_to_remove":[{"Segment_Slug":"D"}],"Unknown":{"segmentSlug":"E"}}`,
			change("", []*toAdd{
				{SegmentSlug: "A"},
				{SegmentSlug: "B", SecondsToBeInSegment: proto.Int64(300)},
				{SegmentSlug: "C", DeadlineForStayingInSegment: timestamppb.New(deadline)},
			}, "D")},
	}
	wantChanges(t, tests)
}

// Several keys for one field: the last one wins, as with encoding/json
// (protojson alone refuses a field given twice); a null after a value
// leaves the value, except for a list, which it empties.
func TestBodyDuplicateKeysLastOneWins(t *testing.T) {
	tests := []changeCase{
		{`{"userID":"a","userId":"b"}`, change("b", nil)},
		{`{"userId":"b","userID":"a"}`, change("a", nil)},
		{`{"userID":"a","userID":"b"}`, change("b", nil)},
		{`{"user_id":"a","USERID":"b"}`, change("b", nil)},
		{`{"userID":"a","userid":null}`, change("a", nil)},
		{`{"userID":null,"userid":"a"}`, change("a", nil)},
		{`{"segmentsToAdd":[{"segmentSlug":"A"}],"SegmentsToAdd":[{"segmentSlug":"B"}]}`, change("", []*toAdd{{SegmentSlug: "B"}})},
		{`{"segmentsToAdd":[{"segmentSlug":"A"}],"segmentsToAdd":null}`, change("", nil)},
		{`{"segmentsToAdd":[{"segmentSlug":"A","SEGMENTSLUG":"B","secondsToBeInSegment":1,"seconds_to_be_in_segment":2}]}`,
			change("", []*toAdd{{SegmentSlug: "B", SecondsToBeInSegment: proto.Int64(2)}})},
	}
	wantChanges(t, tests)
}

// The original's request type, decoded by encoding/json: the oracle.
type originalChange struct {
	UserID        string `json:"userID"`
	SegmentsToAdd []struct {
		SegmentSlug                 string    `json:"segmentSlug"`
		SecondsToBeInSegment        int64     `json:"secondsToBeInSegment"`
		DeadlineForStayingInSegment time.Time `json:"deadlineForStayingInSegment"`
	} `json:"segmentsToAdd"`
	SegmentsToRemove []struct {
		SegmentSlug string `json:"segmentSlug"`
	} `json:"segmentsToRemove"`
}

// Whatever keys a client of the original sent, the gateway reads the same
// values as the original did. (One quirk is not copied: encoding/json
// decodes a second array for a field into the elements the first one left,
// so fields the second one lacks survive; here the second array replaces
// the first whole.)
func TestBodyReadsWhatEncodingJSONReads(t *testing.T) {
	for _, body := range []string{
		`{"userID":"a","USERID":"b","userId":"c"}`,
		`{"USERID":"c","userID":"a"}`,
		`{"userID":"a","UserID":null}`,
		`{"segmentsToAdd":[{"segmentSlug":"A"}],"SEGMENTSTOADD":[{"SegmentSlug":"B"},{"segmentSLUG":"C","SECONDSTOBEINSEGMENT":7}]}`,
		`{"segmentsToAdd":[{"segmentSlug":"A","SegmentSlug":"B","segmentslug":null}],"segmentsToRemove":[{"segmentSlug":"X"}],"SegmentsToRemove":null}`,
		`{"segmentsToAdd":[{"segmentSlug":"A","deadlineForStayingInSegment":"2030-01-02T03:04:05Z","DeadlineForStayingInSegment":"2031-01-02T03:04:05Z"}]}`,
		`{"segmentsToRemove":[{"SEGMENTSLUG":"R","secondsToBeInSegment":3}],"segmentsToAdd":[]}`,
	} {
		var want originalChange
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", body, err)
		}
		got := &segmentationv1.UpdateUserSegmentsRequest{}
		if err := Body([]byte(body), got, lenient); err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		same := got.GetUserId() == want.UserID && len(got.GetSegmentsToAdd()) == len(want.SegmentsToAdd) &&
			len(got.GetSegmentsToRemove()) == len(want.SegmentsToRemove)
		for i := 0; same && i < len(want.SegmentsToAdd); i++ {
			g, w := got.GetSegmentsToAdd()[i], want.SegmentsToAdd[i]
			var gotDeadline time.Time
			if g.GetDeadlineForStayingInSegment() != nil {
				gotDeadline = g.GetDeadlineForStayingInSegment().AsTime()
			}
			same = g.GetSegmentSlug() == w.SegmentSlug && g.GetSecondsToBeInSegment() == w.SecondsToBeInSegment &&
				gotDeadline.Equal(w.DeadlineForStayingInSegment)
		}
		for i := 0; same && i < len(want.SegmentsToRemove); i++ {
			same = got.GetSegmentsToRemove()[i].GetSegmentSlug() == want.SegmentsToRemove[i].SegmentSlug
		}
		if !same {
			t.Errorf("%s: gateway read %v, encoding/json read %+v", body, got, want)
		}
	}
}

// Every field of every request keeps its JSON name and its proto name
// exactly, and is found case-insensitively by either.
func TestBodyFindsEveryFieldOfEveryRequest(t *testing.T) {
	for _, msg := range []proto.Message{
		&segmentationv1.CreateSegmentRequest{}, &segmentationv1.DeleteSegmentRequest{},
		&segmentationv1.UpdateUserSegmentsRequest{}, &segmentationv1.UpdateSegmentPercentRequest{},
		&segmentationv1.AddSegmentToUsersRequest{}, &segmentationv1.RemoveSegmentFromUsersRequest{},
		&segmentationv1.CreateUserRequest{}, &segmentationv1.UpdateUserRequest{}, &segmentationv1.DeleteUserRequest{},
	} {
		fields := msg.ProtoReflect().Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			for _, key := range []string{fd.JSONName(), string(fd.Name()), strings.ToUpper(fd.JSONName()), strings.ToLower(fd.JSONName())} {
				if got := fieldByKey(msg.ProtoReflect().Descriptor(), key); got != fd {
					t.Errorf("%s: key %q found %v, want %s", msg.ProtoReflect().Descriptor().Name(), key, got, fd.Name())
				}
			}
		}
	}
}

// What the gateway cannot read is said with the field's path, in the
// contract's names whatever the client's spelling, and what it must be.
func TestBodyErrorsNameTheField(t *testing.T) {
	long := strings.Repeat("é", 30)
	tests := []struct {
		msg  proto.Message
		body string
		want string
	}{
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":5}`, `slug: must be a string, got 5`},
		{&segmentationv1.CreateSegmentRequest{}, `{"Slug":true}`, `slug: must be a string, got true`},
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":["` + long + `"]}`, `slug: must be a string, got ["` + long[:38] + `…`},
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":"\ud800"}`, `slug: must be valid Unicode text, got "\ud800"`},
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":"A","percentToFill":"lots"}`, `percentToFill: must be a number, got "lots"`},
		{&segmentationv1.CreateSegmentRequest{}, `{"percentToFill":1e999}`, `percentToFill: must be a number no larger than 1.8e+308 in magnitude, got 1e999`},
		{&segmentationv1.CreateSegmentRequest{}, `{"excludeSegments":"A"}`, `excludeSegments: must be an array, got "A"`},
		{&segmentationv1.CreateSegmentRequest{}, `{"excludeSegments":["A",{}]}`, `excludeSegments[1]: must be a string, got {}`},
		{&segmentationv1.CreateSegmentRequest{}, `{"autoSecondsToBeInSegment":"x"}`, `autoSecondsToBeInSegment: must be an integer, got "x"`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":"x"}`, `segmentsToAdd: must be an array, got "x"`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":["S"]}`, `segmentsToAdd[0]: must be an object, got "S"`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":[{},null]}`, `segmentsToAdd[1]: must be an object, got null`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":[{"segmentSlug":"A"},{"secondsToBeInSegment":"soon"}]}`,
			`segmentsToAdd[1].secondsToBeInSegment: must be an integer, got "soon"`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"SEGMENTSTOADD":[{"SecondsToBeInSegment":1.5}]}`,
			`segmentsToAdd[0].secondsToBeInSegment: must be an integer, got 1.5`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":[{"secondsToBeInSegment":99999999999999999999}]}`,
			`segmentsToAdd[0].secondsToBeInSegment: must be an integer from -9223372036854775808 to 9223372036854775807, got 99999999999999999999`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":[{"secondsToBeInSegment":"-1e30"}]}`,
			`segmentsToAdd[0].secondsToBeInSegment: must be an integer from -9223372036854775808 to 9223372036854775807, got "-1e30"`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToAdd":[{"deadlineForStayingInSegment":"tomorrow"}]}`,
			`segmentsToAdd[0].deadlineForStayingInSegment: must be an RFC 3339 time from 0001 to 9999 such as "2030-01-02T03:04:05Z", got "tomorrow"`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToRemove":{"segmentSlug":"S"}}`, `segmentsToRemove: must be an array, got {"segmentSlug":"S"}`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"segmentsToRemove":[{"segmentSlug":["S"]}]}`, `segmentsToRemove[0].segmentSlug: must be a string, got ["S"]`},
		{&segmentationv1.UpdateUserSegmentsRequest{}, `{"userID":12345}`, `userID: must be a string, got 12345`},
		{&segmentationv1.AddSegmentToUsersRequest{}, `{"userIDs":["a",1]}`, `userIDs[1]: must be a string, got 1`},
		{&segmentationv1.AddSegmentToUsersRequest{}, `{"userIDs":[null]}`, `userIDs[0]: must be a string, got null`},
		{&segmentationv1.UpdateUserRequest{}, `{"status":1}`, `status: must be a string, got 1`},
		{&segmentationv1.CreateSegmentRequest{}, `not json`, `request body is not valid JSON: invalid character 'o' in literal null (expecting 'u') (at byte 2)`},
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":"A",}`, `request body is not valid JSON: invalid character '}' looking for beginning of object key string (at byte 13)`},
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":"A"`, `request body is not valid JSON: it ends inside its value`},
		{&segmentationv1.CreateSegmentRequest{}, `{"slug":"A"} {}`, `request body has data after its JSON value`},
		{&segmentationv1.CreateSegmentRequest{}, `["slug"]`, `request body must be a JSON object, got ["slug"]`},
		{&segmentationv1.CreateSegmentRequest{}, `null`, `request body must be a JSON object, got null`},
		{&segmentationv1.CreateSegmentRequest{}, "{\"slug\":\"\xff\"}", `request body is not valid UTF-8`},
	}
	for _, tc := range tests {
		err := Body([]byte(tc.body), tc.msg, lenient)
		if err == nil {
			t.Errorf("%s: accepted", tc.body)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.body, err, tc.want)
		}
		for _, internal := range []string{"proto", "line 1", "strconv", "field slug"} {
			if strings.Contains(err.Error(), internal) {
				t.Errorf("%s: %q names Go's internals (%q)", tc.body, err, internal)
			}
		}
	}
}
