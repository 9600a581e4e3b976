#include "api/history_service.h"

#include <absl/strings/str_cat.h>

#include <algorithm>
#include <memory>

#include "api/grpc_status.h"
#include "api/paced_stream.h"
#include "api/proto_time.h"
#include "api/unary_call.h"
#include "common/status_macros.h"
#include "metrics/registry.h"

namespace segments::api {
namespace {

namespace v1 = segmentation::v1;

constexpr absl::string_view kReportPath = "/segments/history-report";

// The methods, as the access table (api/access.h) names them.
constexpr std::string_view kGetHistoryReportLink = "/segmentation.v1.HistoryService/GetHistoryReportLink";
constexpr std::string_view kDownloadHistoryReport = "/segmentation.v1.HistoryService/DownloadHistoryReport";
constexpr std::string_view kListUserHistory = "/segmentation.v1.HistoryService/ListUserHistory";
constexpr std::string_view kGetUserSegmentsAt = "/segmentation.v1.HistoryService/GetUserSegmentsAt";
constexpr std::string_view kListSegmentMembersAt = "/segmentation.v1.HistoryService/ListSegmentMembersAt";
constexpr std::string_view kStreamSegmentMembersAt = "/segmentation.v1.HistoryService/StreamSegmentMembersAt";
constexpr std::string_view kCountSegmentMembersAt = "/segmentation.v1.HistoryService/CountSegmentMembersAt";
constexpr std::string_view kGetSegmentSizeHistory = "/segmentation.v1.HistoryService/GetSegmentSizeHistory";
constexpr std::string_view kExplainUserSegments = "/segmentation.v1.HistoryService/ExplainUserSegments";

// Members per message of StreamSegmentMembersAt.
constexpr int32_t kStreamBatch = 1000;

// An optional Timestamp field.
template <typename Request>
std::optional<absl::Time> AtOf(const Request& request) {
  if (!request.has_at()) return std::nullopt;
  return FromProto(request.at());
}

void EventToProto(const domain::HistoryEvent& event, v1::HistoryEvent* out) {
  out->set_user_id(event.user_id.ToString());
  out->set_segment(event.slug);
  out->set_operation(std::string(domain::ToString(event.operation)));
  out->set_reason(std::string(domain::ToString(event.reason)));
  ToProto(event.at, out->mutable_at());
  out->set_actor(event.actor);
}

void MembershipToProto(const domain::MembershipAt& m, v1::MembershipAt* out) {
  out->set_segment(m.slug);
  out->set_user_id(m.user_id.ToString());
  ToProto(m.added_at, out->mutable_added_at());
  if (m.expires_at) ToProto(*m.expires_at, out->mutable_expires_at());
  out->set_reason(std::string(domain::ToString(m.reason)));
  out->set_actor(m.actor);
}

void CountsToProto(const std::array<int64_t, domain::EventCounts::kReasons>& counts, v1::ReasonCounts* out) {
  using domain::Reason;
  auto of = [&](Reason r) { return counts[static_cast<size_t>(r)]; };
  out->set_manual(of(Reason::kManual));
  out->set_ttl(of(Reason::kTtl));
  out->set_auto_percent(of(Reason::kAutoPercent));
  out->set_segment_deleted(of(Reason::kSegmentDeleted));
  out->set_user_deleted(of(Reason::kUserDeleted));
}

// Hosts as a client may send them: names, IPv4, [IPv6], and a port. Anything
// else is not put into a link.
bool IsPlainHost(std::string_view host) {
  return !host.empty() && host.size() <= 255 &&
         host.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-:[]") ==
             std::string_view::npos;
}

std::string LinkQuery(const domain::ReportLink& link) {
  // Every value is made of URL-safe characters: a user id, numbers, a key id of
  // [A-Za-z0-9_.-] and base64url.
  std::string query;
  if (link.query.user) absl::StrAppend(&query, "userID=", *link.query.user, "&");
  absl::StrAppend(&query, "year=", link.query.year, "&month=", link.query.month,
                  "&expires=", absl::ToUnixSeconds(link.expires), "&key=", link.key_id, "&signature=", link.signature);
  return query;
}

struct ReportMetrics {
  metrics::Gauge& running =
      metrics::Default().AddGauge("segments_reports_running", "History reports being streamed now.");
  metrics::Family<metrics::Counter>& finished = metrics::Default().AddCounterFamily(
      "segments_reports_total", "History reports streamed to the end, by result (ok or error).", {"result"});
  metrics::Counter& rows =
      metrics::Default().AddCounter("segments_report_rows_total", "History events written into reports (CSV rows).");
  metrics::Counter& bytes =
      metrics::Default().AddCounter("segments_report_bytes_total", "Bytes of CSV written into reports.");
};

ReportMetrics& Metrics() {
  static auto* metrics = [] {
    auto* made = new ReportMetrics();
    made->finished.With({"ok"});
    made->finished.With({"error"});
    return made;
  }();
  return *metrics;
}
// Registered when the program starts, so that the series exist (at 0)
// before the first event: rates and dashboards need them.
[[maybe_unused]] const bool kReportMetricsRegistered = (Metrics(), true);

}  // namespace

// Streams one report, a chunk at a time (api/paced_stream.h).
class HistoryService::ReportStream final : public PacedStream<v1::DownloadHistoryReportResponse> {
 public:
  ReportStream(HistoryService& service, grpc::CallbackServerContext* context, domain::ReportLink link)
      : PacedStream(service.workers_), service_(service), context_(context), link_(std::move(link)) {}

  ~ReportStream() override {
    if (holds_slot_) {
      service_.reports_streaming_.fetch_sub(1);
      Metrics().running.Add(-1);
    }
  }

  // One of the service's max_concurrent_reports slots, held until the stream
  // is destroyed; false when all are taken.
  bool TakeSlot() {
    if (service_.reports_streaming_.fetch_add(1) >= service_.options_.max_concurrent_reports) {
      service_.reports_streaming_.fetch_sub(1);
      return false;
    }
    holds_slot_ = true;
    Metrics().running.Add(1);
    return true;
  }

 private:
  void Step() override {
    if (context_->IsCancelled()) {
      report_.reset();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled"));
      return;
    }
    const bool first = report_ == nullptr;
    if (first) {
      auto opened = service_.use_cases_.OpenReport(link_);
      if (!opened.ok()) {
        Finish(ToGrpcStatus(opened.status()));
        return;
      }
      report_ = std::move(*opened);
    }
    auto chunk = report_->NextChunk();
    if (!chunk.ok() || chunk->empty()) {
      report_.reset();  // the database connection goes back before the call ends
      Metrics().finished.With({chunk.ok() ? "ok" : "error"}).Inc();
      Finish(chunk.ok() ? grpc::Status::OK : ToGrpcStatus(chunk.status()));
      return;
    }
    const auto lines = static_cast<uint64_t>(std::count(chunk->begin(), chunk->end(), '\n'));
    Metrics().rows.Inc(first && lines > 0 ? lines - 1 : lines);  // the first line is the header
    Metrics().bytes.Inc(chunk->size());
    response_.Clear();
    if (first) {
      response_.set_content_type(std::string(domain::kCsvContentType));
      response_.set_file_name(report_->file_name());
    }
    response_.set_data(std::move(*chunk));
    StartWrite(&response_);
  }

  HistoryService& service_;
  grpc::CallbackServerContext* context_;
  const domain::ReportLink link_;
  std::unique_ptr<domain::CsvReport> report_;
  v1::DownloadHistoryReportResponse response_;
  bool holds_slot_ = false;
};

std::string HistoryService::LinkBase(const grpc::CallbackServerContext& context) const {
  if (!options_.report_link_base_url.empty()) return options_.report_link_base_url;
  const auto& metadata = context.client_metadata();
  const auto forwarded = metadata.find("x-forwarded-host");
  if (forwarded == metadata.end()) return "";
  const std::string host(forwarded->second.data(), forwarded->second.size());
  return IsPlainHost(host) ? "http://" + host : "";
}

grpc::ServerUnaryReactor* HistoryService::GetHistoryReportLink(grpc::CallbackServerContext* context,
                                                               const v1::GetHistoryReportLinkRequest* request,
                                                               v1::GetHistoryReportLinkResponse* response) {
  return calls_.Read(context, kGetHistoryReportLink, [this, context, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(const domain::ReportLink link,
                     use_cases_.CreateReportLink({request->user_id(), request->month(), request->year()}));
    response->set_report_link(absl::StrCat(LinkBase(*context), kReportPath, "?", LinkQuery(link)));
    ToProto(link.expires, response->mutable_expiration_time());
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::DownloadHistoryReportResponse>* HistoryService::DownloadHistoryReport(
    grpc::CallbackServerContext* context, const v1::DownloadHistoryReportRequest* request) {
  // Open to every caller (the link is the proof), still through the table.
  return calls_.Stream<v1::DownloadHistoryReportResponse>(context, kDownloadHistoryReport, [this, context, request] {
    domain::ReportLink link;
    if (!request->user_id().empty()) link.query.user = request->user_id();
    link.query.year = request->year();
    link.query.month = request->month();
    link.expires = absl::FromUnixSeconds(request->expires());
    link.key_id = request->key();
    link.signature = request->signature();
    // A link that is not valid is refused before it can take a report slot,
    // whatever the load.
    const absl::Status valid = use_cases_.VerifyReportLink(link);
    auto* stream = new ReportStream(*this, context, std::move(link));
    if (!valid.ok()) {
      stream->Finish(ToGrpcStatus(valid));
    } else if (!stream->TakeSlot()) {
      stream->Finish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "too many reports are being downloaded at once; retry later"));
    } else {
      stream->Begin();
    }
    return stream;
  });
}

grpc::ServerUnaryReactor* HistoryService::ListUserHistory(grpc::CallbackServerContext* context,
                                                          const v1::ListUserHistoryRequest* request,
                                                          v1::ListUserHistoryResponse* response) {
  return calls_.Read(context, kListUserHistory, [this, request, response]() -> absl::Status {
    domain::UserHistoryCommand command{request->user_id(), request->segment(),   std::nullopt,
                                       std::nullopt,       request->page_size(), request->page_token()};
    if (request->has_from()) command.from = FromProto(request->from());
    if (request->has_to()) command.to = FromProto(request->to());
    ASSIGN_OR_RETURN(domain::HistoryPage page, use_cases_.ListUserHistory(command));
    for (const domain::HistoryEvent& event : page.events) EventToProto(event, response->add_events());
    response->set_next_page_token(std::move(page.next_page_token));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* HistoryService::GetUserSegmentsAt(grpc::CallbackServerContext* context,
                                                            const v1::GetUserSegmentsAtRequest* request,
                                                            v1::GetUserSegmentsAtResponse* response) {
  return calls_.Read(context, kGetUserSegmentsAt, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(const domain::UserSegmentsAt found,
                     time_travel_.SegmentsOfUserAt({request->user_id(), AtOf(*request)}));
    for (const domain::MembershipAt& m : found.memberships) {
      response->add_segments(m.slug);
      MembershipToProto(m, response->add_memberships());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* HistoryService::ListSegmentMembersAt(grpc::CallbackServerContext* context,
                                                               const v1::ListSegmentMembersAtRequest* request,
                                                               v1::ListSegmentMembersAtResponse* response) {
  return calls_.Read(context, kListSegmentMembersAt, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(
        const domain::MembersAtPage page,
        time_travel_.MembersAt({request->slug(), AtOf(*request), request->page_size(), request->page_token()}));
    for (const domain::MembershipAt& m : page.members) MembershipToProto(m, response->add_members());
    response->set_next_page_token(page.next_page_token);
    ToProto(page.at, response->mutable_at());
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::StreamSegmentMembersAtResponse>* HistoryService::StreamSegmentMembersAt(
    grpc::CallbackServerContext* context, const v1::StreamSegmentMembersAtRequest* request) {
  return calls_.Stream<v1::StreamSegmentMembersAtResponse>(context, kStreamSegmentMembersAt, [this, context, request] {
    // Every page answers about the first one's instant (its token names it).
    auto* stream = new PagedStream<v1::StreamSegmentMembersAtResponse, domain::MembersAtPage>(
        workers_, context,
        [this, slug = request->slug(), at = AtOf(*request)](const std::string& token) {
          return time_travel_.MembersAt({slug, token.empty() ? at : std::nullopt, kStreamBatch, token});
        },
        [](const domain::MembersAtPage& page, v1::StreamSegmentMembersAtResponse& response) {
          for (const domain::MembershipAt& m : page.members) MembershipToProto(m, response.add_members());
          return !page.members.empty();
        });
    stream->Begin();
    return stream;
  });
}

grpc::ServerUnaryReactor* HistoryService::CountSegmentMembersAt(grpc::CallbackServerContext* context,
                                                                const v1::CountSegmentMembersAtRequest* request,
                                                                v1::CountSegmentMembersAtResponse* response) {
  return calls_.Read(context, kCountSegmentMembersAt, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(const domain::CountAt counted,
                     time_travel_.CountMembersAt({request->slug(), AtOf(*request), 0, ""}));
    response->set_count(counted.count);
    ToProto(counted.at, response->mutable_at());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* HistoryService::GetSegmentSizeHistory(grpc::CallbackServerContext* context,
                                                                const v1::GetSegmentSizeHistoryRequest* request,
                                                                v1::GetSegmentSizeHistoryResponse* response) {
  return calls_.Read(context, kGetSegmentSizeHistory, [this, request, response]() -> absl::Status {
    domain::SizeHistoryCommand command{request->slug(), std::nullopt, std::nullopt, request->step()};
    if (request->has_from()) command.from = FromProto(request->from());
    if (request->has_to()) command.to = FromProto(request->to());
    ASSIGN_OR_RETURN(const domain::SizeHistory history, time_travel_.SizeOverTime(command));
    response->set_size_at_start(history.size_at_start);
    for (const domain::SizePoint& point : history.points) {
      v1::SizePoint* out = response->add_points();
      ToProto(point.start, out->mutable_start());
      out->set_size(point.size);
      CountsToProto(point.events.added, out->mutable_added());
      CountsToProto(point.events.removed, out->mutable_removed());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* HistoryService::ExplainUserSegments(grpc::CallbackServerContext* context,
                                                              const v1::ExplainUserSegmentsRequest* request,
                                                              v1::ExplainUserSegmentsResponse* response) {
  return calls_.Read(context, kExplainUserSegments, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(
        const std::vector<domain::Explanation> explained,
        time_travel_.Explain({request->user_id(), {request->segments().begin(), request->segments().end()}}));
    for (const domain::Explanation& x : explained) {
      v1::SegmentExplanation* out = response->add_explanations();
      out->set_segment(x.segment);
      out->set_member(x.member);
      out->set_why(x.why);
      out->set_summary(x.summary);
      if (x.event) EventToProto(*x.event, out->mutable_event());
      if (x.expires_at) ToProto(*x.expires_at, out->mutable_expires_at());
      if (x.bucket) out->set_bucket(*x.bucket);
      if (x.threshold) out->set_threshold(*x.threshold);
      out->set_percent_to_fill(x.percent_hundredths / 100.0);
      for (const std::string& f : x.unmet_filters) out->add_unmet_filters(f);
    }
    return absl::OkStatus();
  });
}

}  // namespace segments::api
