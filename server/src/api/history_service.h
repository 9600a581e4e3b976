// gRPC HistoryService: report links, the streamed CSV reports they point to,
// and a user's history in pages.
#pragma once

#include <atomic>
#include <string>

#include "api/access.h"
#include "api/calls.h"
#include "common/worker_pool.h"
#include "domain/history_use_cases.h"
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
  HistoryService(domain::HistoryUseCases& use_cases, WorkerPool& workers, const CallGuard& guard,
                 HistoryServiceOptions options)
      : use_cases_(use_cases), workers_(workers), calls_(workers, guard), options_(std::move(options)) {}

  grpc::ServerUnaryReactor* GetHistoryReportLink(grpc::CallbackServerContext* context,
                                                 const segmentation::v1::GetHistoryReportLinkRequest* request,
                                                 segmentation::v1::GetHistoryReportLinkResponse* response) override;
  grpc::ServerWriteReactor<segmentation::v1::DownloadHistoryReportResponse>* DownloadHistoryReport(
      grpc::CallbackServerContext* context, const segmentation::v1::DownloadHistoryReportRequest* request) override;
  grpc::ServerUnaryReactor* ListUserHistory(grpc::CallbackServerContext* context,
                                            const segmentation::v1::ListUserHistoryRequest* request,
                                            segmentation::v1::ListUserHistoryResponse* response) override;

 private:
  class ReportStream;

  std::string LinkBase(const grpc::CallbackServerContext& context) const;

  domain::HistoryUseCases& use_cases_;
  WorkerPool& workers_;
  Calls calls_;
  const HistoryServiceOptions options_;
  std::atomic<int> reports_streaming_{0};
};

}  // namespace segments::api
