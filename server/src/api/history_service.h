// gRPC HistoryService: report links, the streamed CSV reports they point to,
// and a user's history in pages.
#pragma once

#include <atomic>
#include <string>

#include "api/access.h"
#include "api/calls.h"
#include "common/worker_pool.h"
#include "domain/history_use_cases.h"
#include "domain/time_travel_use_cases.h"
#include "segmentation/v1/history_service.grpc.pb.h"

namespace segments::api {

struct HistoryServiceOptions {
  // Scheme and authority of the public HTTP address, e.g.
  // "https://segments.example.com", that report links start with. Empty: the
  // gateway's Host as the client used it (x-forwarded-host), or else a path.
  std::string report_link_base_url;
  // Reports streaming at once; each holds a database connection.
  int max_concurrent_reports = 4;
};

class HistoryService final : public segmentation::v1::HistoryService::CallbackService {
 public:
  HistoryService(domain::HistoryUseCases& use_cases, domain::TimeTravelUseCases& time_travel, WorkerPool& workers,
                 const CallGuard& guard, HistoryServiceOptions options)
      : use_cases_(use_cases),
        time_travel_(time_travel),
        workers_(workers),
        calls_(workers, guard),
        options_(std::move(options)) {}

  grpc::ServerUnaryReactor* GetHistoryReportLink(grpc::CallbackServerContext* context,
                                                 const segmentation::v1::GetHistoryReportLinkRequest* request,
                                                 segmentation::v1::GetHistoryReportLinkResponse* response) override;
  grpc::ServerWriteReactor<segmentation::v1::DownloadHistoryReportResponse>* DownloadHistoryReport(
      grpc::CallbackServerContext* context, const segmentation::v1::DownloadHistoryReportRequest* request) override;
  grpc::ServerUnaryReactor* ListUserHistory(grpc::CallbackServerContext* context,
                                            const segmentation::v1::ListUserHistoryRequest* request,
                                            segmentation::v1::ListUserHistoryResponse* response) override;

  // Time travel (docs/time-travel.md).
  grpc::ServerUnaryReactor* GetUserSegmentsAt(grpc::CallbackServerContext* context,
                                              const segmentation::v1::GetUserSegmentsAtRequest* request,
                                              segmentation::v1::GetUserSegmentsAtResponse* response) override;
  grpc::ServerUnaryReactor* ListSegmentMembersAt(grpc::CallbackServerContext* context,
                                                 const segmentation::v1::ListSegmentMembersAtRequest* request,
                                                 segmentation::v1::ListSegmentMembersAtResponse* response) override;
  grpc::ServerWriteReactor<segmentation::v1::StreamSegmentMembersAtResponse>* StreamSegmentMembersAt(
      grpc::CallbackServerContext* context, const segmentation::v1::StreamSegmentMembersAtRequest* request) override;
  grpc::ServerUnaryReactor* CountSegmentMembersAt(grpc::CallbackServerContext* context,
                                                  const segmentation::v1::CountSegmentMembersAtRequest* request,
                                                  segmentation::v1::CountSegmentMembersAtResponse* response) override;
  grpc::ServerUnaryReactor* GetSegmentSizeHistory(grpc::CallbackServerContext* context,
                                                  const segmentation::v1::GetSegmentSizeHistoryRequest* request,
                                                  segmentation::v1::GetSegmentSizeHistoryResponse* response) override;
  grpc::ServerUnaryReactor* ExplainUserSegments(grpc::CallbackServerContext* context,
                                                const segmentation::v1::ExplainUserSegmentsRequest* request,
                                                segmentation::v1::ExplainUserSegmentsResponse* response) override;

 private:
  class ReportStream;

  std::string LinkBase(const grpc::CallbackServerContext& context) const;

  domain::HistoryUseCases& use_cases_;
  domain::TimeTravelUseCases& time_travel_;
  WorkerPool& workers_;
  Calls calls_;
  const HistoryServiceOptions options_;
  std::atomic<int> reports_streaming_{0};
};

}  // namespace segments::api
