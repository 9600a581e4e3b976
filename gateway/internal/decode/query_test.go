package decode

import (
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
)

func TestQueryReadsValues(t *testing.T) {
	got := &segmentationv1.ListUserHistoryRequest{}
	values, _ := url.ParseQuery("userID=u&segment=S&from=2030-01-02T03:04:05Z&pageSize=10&unknown=1")
	if err := Query(got, values); err != nil {
		t.Fatal(err)
	}
	want := &segmentationv1.ListUserHistoryRequest{
		UserId: "u", Segment: "S", From: timestamppb.New(deadline), PageSize: 10,
	}
	if !proto.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A query the default parser refuses is explained with the parameter and
// what it must be, never with strconv's or grpc-gateway's words.
func TestQueryErrorsNameTheParameter(t *testing.T) {
	tests := []struct {
		msg   proto.Message
		query string
		want  string
	}{
		{&segmentationv1.GetHistoryReportLinkRequest{}, "month=&year=2023", `month: must be an integer, got ""`},
		{&segmentationv1.GetHistoryReportLinkRequest{}, "month=aug&year=2023", `month: must be an integer, got "aug"`},
		{&segmentationv1.GetHistoryReportLinkRequest{}, "month=8&year=2023.5", `year: must be an integer, got "2023.5"`},
		{&segmentationv1.GetHistoryReportLinkRequest{}, "month=8&year=99999999999",
			`year: must be an integer from -2147483648 to 2147483647, got "99999999999"`},
		{&segmentationv1.GetHistoryReportLinkRequest{}, "month=8&month=9", `month: given 2 times; give it once`},
		{&segmentationv1.GetHistoryReportLinkRequest{}, "userID=a&user_id=b", `user_id: the same parameter as userID; give it once`},
		{&segmentationv1.GetUserSegmentsRequest{}, "userID=a&userID=b&userID=c", `userID: given 3 times; give it once`},
		{&segmentationv1.GetUserSegmentsRequest{}, "userID.x=1", `userID.x: userID has no fields`},
		{&segmentationv1.GetUserSegmentsRequest{}, "userID[]=x", `userID[]: userID takes no [key]`},
		{&segmentationv1.ListUserHistoryRequest{}, "userID=u&from=yesterday",
			`from: must be an RFC 3339 time from 0001 to 9999 such as "2030-01-02T03:04:05Z", got "yesterday"`},
		{&segmentationv1.ListUserHistoryRequest{}, "userID=u&pageSize=ten", `pageSize: must be an integer, got "ten"`},
		{&segmentationv1.DownloadHistoryReportRequest{}, "year=2023&month=8&expires=soon", `expires: must be an integer, got "soon"`},
		{&segmentationv1.DownloadHistoryReportRequest{}, "expires=99999999999999999999",
			`expires: must be an integer from -9223372036854775808 to 9223372036854775807, got "99999999999999999999"`},
	}
	for _, tc := range tests {
		values, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		err = Query(tc.msg, values)
		if err == nil {
			t.Errorf("?%s: accepted", tc.query)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("?%s:\n got %s\nwant %s", tc.query, err, tc.want)
		}
		for _, internal := range []string{"strconv", "parsing", "syntax", "field \""} {
			if strings.Contains(err.Error(), internal) {
				t.Errorf("?%s: %q names Go's internals (%q)", tc.query, err, internal)
			}
		}
	}
}
