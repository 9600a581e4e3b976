// Package report serves the CSV file behind a history report link. It reads
// the link's signed query, opens HistoryService.DownloadHistoryReport and
// copies each chunk to the client as it arrives, so neither the gateway nor
// the server ever holds a whole report.
//
// It is a hand-written route rather than grpc-gateway's generated one: the
// generated stream handler writes errors as JSON chunks of its own shape and
// puts a delimiter between messages, which would corrupt a CSV file.
package report

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	segmentationv1 "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/decode"
	"segments/gateway/internal/httperr"
)

// Path is where report links point, as the server builds them.
const Path = "/segments/history-report"

// Handler serves GET Path. `timeout` bounds a whole download (a month of
// everyone's history is large and the client may be slow).
func Handler(client segmentationv1.HistoryServiceClient, timeout time.Duration, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httperr.Write(w, http.StatusMethodNotAllowed,
				httperr.One(httperr.TypeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path))
			return
		}
		request := &segmentationv1.DownloadHistoryReportRequest{}
		if err := decode.Query(request, r.URL.Query()); err != nil {
			httperr.Write(w, http.StatusBadRequest, httperr.One(httperr.TypeParse, "report link: "+err.Error()))
			return
		}

		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-forwarded-host", r.Host)
		stream, err := client.DownloadHistoryReport(ctx, request)
		if err != nil {
			writeStatus(w, err)
			return
		}
		// The first chunk decides the answer: an error before it (a bad or
		// expired link, the database down) still gets the envelope.
		first, err := stream.Recv()
		if err != nil {
			writeStatus(w, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", first.GetContentType())
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": first.GetFileName()}))
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		for chunk := first; ; {
			if _, err := w.Write(chunk.GetData()); err != nil {
				return // the client went away; cancelling ctx stops the server
			}
			if chunk, err = stream.Recv(); errors.Is(err, io.EOF) {
				return
			} else if err != nil {
				// Too late for an error status. Break the connection so the
				// client sees a failed transfer, never a complete-looking
				// file with rows missing.
				logger.Error("report stream failed after the headers were sent", "error", status.Convert(err).Message())
				panic(http.ErrAbortHandler)
			}
		}
	})
}

func writeStatus(w http.ResponseWriter, err error) {
	code, entries := httperr.FromStatus(status.Convert(err))
	httperr.Write(w, code, entries...)
}
