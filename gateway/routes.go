package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// Registers the protos' descriptors, which hold the HTTP routes.
	_ "segments/gateway/gen/segmentation/v1"
	"segments/gateway/internal/middleware"
)

// isRead reports whether the RPC of that method name (without the service)
// is a read, answering 200 with its JSON; every other call is a mutation
// and answers 204 with no body.
func isRead(name string) bool {
	for _, prefix := range []string{"Get", "List", "Download", "Stream", "Count", "Explain"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// longRPCs work on whole sets of users, possibly millions of rows in one
// transaction, or stream a whole segment: their upstream calls are bounded
// by LongUpstreamTimeout instead of UpstreamTimeout.
var longRPCs = []protoreflect.FullName{
	"segmentation.v1.SegmentService.CreateSegment",          // percentToFill fills the segment
	"segmentation.v1.SegmentService.DeleteSegment",          // ends every membership
	"segmentation.v1.SegmentService.UpdateSegmentPercent",   // adds or removes whole buckets
	"segmentation.v1.SegmentService.AddSegmentToUsers",      // up to 100,000 users
	"segmentation.v1.SegmentService.RemoveSegmentFromUsers", // up to 100,000 users
	"segmentation.v1.SegmentService.StreamSegmentMembers",   // every member
	"segmentation.v1.HistoryService.StreamSegmentMembersAt", // every member at an instant
}

// route is an HTTP method and a path template, as grpc-gateway matches them.
type route struct{ method, path string }

// httpRoutes lists the REST routes of an RPC, from its google.api.http
// option and the option's additional bindings.
func httpRoutes(m protoreflect.MethodDescriptor) []route {
	rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
	if rule == nil {
		return nil
	}
	var out []route
	for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			out = append(out, route{http.MethodGet, p.Get})
		case *annotations.HttpRule_Post:
			out = append(out, route{http.MethodPost, p.Post})
		case *annotations.HttpRule_Put:
			out = append(out, route{http.MethodPut, p.Put})
		case *annotations.HttpRule_Delete:
			out = append(out, route{http.MethodDelete, p.Delete})
		case *annotations.HttpRule_Patch:
			out = append(out, route{http.MethodPatch, p.Patch})
		case *annotations.HttpRule_Custom:
			out = append(out, route{p.Custom.GetKind(), p.Custom.GetPath()})
		}
	}
	return out
}

// longRoutes are the REST routes of longRPCs, read from the protos so that
// a route renamed there keeps its timeout.
var longRoutes = func() map[route]bool {
	out := map[route]bool{}
	for _, name := range longRPCs {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			panic(fmt.Sprintf("gateway: long-running RPC %s: %v", name, err))
		}
		m, ok := d.(protoreflect.MethodDescriptor)
		if !ok {
			panic(fmt.Sprintf("gateway: long-running RPC %s is not a method", name))
		}
		routes := httpRoutes(m)
		if len(routes) == 0 {
			panic(fmt.Sprintf("gateway: long-running RPC %s has no HTTP route", name))
		}
		for _, r := range routes {
			out[r] = true
		}
	}
	return out
}()

// upstreamTimeout is the bound of a call through a route: its HTTP method
// and the path template grpc-gateway matched.
func upstreamTimeout(opts *Options, method, pathTemplate string) time.Duration {
	if longRoutes[route{method, pathTemplate}] {
		return opts.LongUpstreamTimeout
	}
	return opts.UpstreamTimeout
}

// upstreamDeadline bounds each routed request's upstream call by the
// timeout of its route. It runs inside grpc-gateway's mux, after routing,
// so the route is the one that will be called.
func upstreamDeadline(opts *Options) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			timeout := opts.UpstreamTimeout
			if pattern, ok := runtime.HTTPPattern(r.Context()); ok {
				timeout = upstreamTimeout(opts, r.Method, pattern.String())
			}
			middleware.Deadline(timeout)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next(w, r, params)
			})).ServeHTTP(w, r)
		}
	}
}
