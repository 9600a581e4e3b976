// The whole server wired from a Config: database pool, store, the
// membership read model, use cases,
// worker pool, gRPC services, health and reflection, the TTL expiry job, the
// cleanup of idempotency keys and (when Kafka is configured) the user-event
// consumer. main() and the service
// tests both start it this way.
#pragma once

#include <absl/status/statusor.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "api/access.h"
#include "api/history_service.h"
#include "api/segment_service.h"
#include "api/user_admin_service.h"
#include "auth/authenticator.h"
#include "common/worker_pool.h"
#include "config/config.h"
#include "domain/clock.h"
#include "domain/history_use_cases.h"
#include "domain/idempotency.h"
#include "domain/report_link.h"
#include "domain/segment_use_cases.h"
#include "domain/time_travel_use_cases.h"
#include "domain/user_use_cases.h"
#include "ingest/user_directory.h"
#include "ingest/user_event_consumer.h"
#include "jobs/expiry_job.h"
#include "jobs/idempotency_key_cleanup.h"
#include "jobs/segment_task_resumer.h"
#include "metrics/http_endpoint.h"
#include "metrics/registry.h"
#include "readmodel/membership_read_model.h"
#include "storage/pg_change_feed.h"
#include "storage/pg_pool.h"
#include "storage/pg_store.h"

namespace segments::app {

class Application {
 public:
  // Starts serving and the TTL expiry job. `clock` must outlive the
  // application. Fails if the address cannot be bound, or the report link
  // keys or the token keys are malformed; a database that is down is not an error at
  // start: calls get UNAVAILABLE and health says NOT_SERVING until it is up.
  static absl::StatusOr<std::unique_ptr<Application>> Start(const config::Config& config, const domain::Clock& clock);
  ~Application();

  // The bound port (useful with port 0).
  int port() const { return port_; }
  // The metrics port (0: --metrics-listen is empty).
  int metrics_port() const { return metrics_endpoint_ ? metrics_endpoint_->port() : 0; }
  // For tests and benchmarks: whether reads come from memory, and counts.
  const readmodel::MembershipReadModel& read_model() const { return read_model_; }

  // Stops accepting calls, lets in-flight ones finish for up to `grace`
  // (then cancels them), stops the workers and closes the database pool.
  // Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  Application(const config::Config& config, const domain::Clock& clock, domain::ReportLinkSigner signer,
              std::unique_ptr<auth::Authenticator> authenticator);
  void WatchDatabase();
  void ShowReadModelHealth(bool serving);
  void ShowHealth(std::string_view service, bool serving);
  absl::Status StartUserEvents();
  // Metrics read at each scrape from the parts wired here.
  void ExposeState();

  const config::Config config_;
  storage::PgPool pool_;
  storage::PgStore store_;
  storage::PgChangeFeed change_feed_;
  readmodel::MembershipReadModel read_model_;
  domain::SegmentUseCases segment_use_cases_;
  domain::UserUseCases user_use_cases_;
  domain::BulkMembershipUseCases bulk_use_cases_;
  domain::ListingUseCases listing_use_cases_;
  const domain::ReportLinkSigner signer_;
  domain::HistoryUseCases history_use_cases_;
  domain::TimeTravelUseCases time_travel_use_cases_;
  domain::IdempotentCalls idempotent_calls_;
  WorkerPool workers_;
  const std::unique_ptr<auth::Authenticator> authenticator_;  // null: --auth=off
  const api::CallGuard guard_;
  api::SegmentService segment_service_;
  api::UserAdminService user_admin_service_;
  api::HistoryService history_service_;
  jobs::ExpiryJob expiry_job_;
  jobs::IdempotencyKeyCleanup idempotency_key_cleanup_;
  jobs::SegmentTaskResumer segment_task_resumer_;
  std::unique_ptr<ingest::UserDirectory> user_directory_;
  std::unique_ptr<ingest::UserEventConsumer> user_events_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::vector<metrics::Registry::Registration> scraped_;
  std::unique_ptr<metrics::HttpEndpoint> metrics_endpoint_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread health_watcher_;
};

}  // namespace segments::app
