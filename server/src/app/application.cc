#include "app/application.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "api/call_observer.h"
#include "app/tls.h"
#include "common/crypto.h"
#include "common/deferred_completion.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "grpc/health/v1/health.pb.h"
#include "metrics/process_metrics.h"

namespace segments::app {

namespace {

domain::SegmentTaskOptions TaskChunks(const config::Config& config) {
  return domain::SegmentTaskOptions{.chunk_users = config.segment_task_chunk_users,
                                    .chunk_time = config.segment_task_chunk_time,
                                    .after_chunk = {},
                                    .pause = config.segment_task_pause};
}

absl::StatusOr<domain::ReportLinkSigner> MakeSigner(const config::Config& config) {
  std::vector<domain::SigningKey> keys;
  if (config.report_link_keys.empty()) {
    log::Warning(
        "no report link keys configured (SEGMENTS_REPORT_LINK_KEYS): links signed with a random key "
        "work only on this instance, until it restarts");
    keys.push_back({"local", crypto::RandomBytes(domain::ReportLinkSigner::kMinSecretLength)});
  } else {
    ASSIGN_OR_RETURN(keys, domain::ParseSigningKeys(config.report_link_keys));
  }
  return domain::ReportLinkSigner::Create(std::move(keys), config.report_link_ttl);
}

absl::StatusOr<std::unique_ptr<auth::Authenticator>> MakeAuthenticator(const config::Config& config) {
  if (!config.auth) {
    log::Warning("authentication is OFF (--auth=off): anyone who reaches the port may do anything");
    return nullptr;
  }
  auth::AuthenticatorOptions options;
  options.policy =
      auth::TokenPolicy{config.auth_issuer, config.auth_audience, config.auth_roles_claim, config.auth_clock_skew};
  options.jwks_file = config.auth_jwks_file;
  options.hs256_secret_file = config.auth_hs256_secret_file;
  options.reload_period = config.auth_keys_reload_period;
  if (!options.hs256_secret_file.empty()) {
    log::Warning("tokens are checked with an HS256 shared secret: for development only, use a JWKS in production");
  }
  return auth::Authenticator::Start(std::move(options));
}

constexpr int kMaxRequestBytes = 16 << 20;
// The health service name of the user-event consumer (contract §6).
constexpr std::string_view kUserEventsHealth = "segmentation.v1.UserEvents";
// SERVING while GetUserSegments is answered from memory (docs/read-model.md).
constexpr std::string_view kReadModelHealth = "segmentation.v1.MembershipReadModel";

}  // namespace

Application::Application(const config::Config& config, const domain::Clock& clock, domain::ReportLinkSigner signer,
                         std::unique_ptr<auth::Authenticator> authenticator)
    : config_(config),
      pool_(storage::PgPoolOptions{config.database_url, config.db_pool_size, config.db_connect_timeout,
                                   config.db_statement_timeout, config.db_acquire_timeout}),
      store_(pool_, config.db_set_statement_timeout),
      change_feed_(pool_.conninfo(), pool_.ConnectionDefaults()),
      read_model_(
          change_feed_, store_.database_memberships(),
          readmodel::ReadModelOptions{.poll_period = config.read_model_poll_period,
                                      .max_lag = config.read_model_max_lag,
                                      .on_serving_change = [this](bool serving) { ShowReadModelHealth(serving); }}),
      segment_use_cases_(store_, clock, TaskChunks(config)),
      user_use_cases_(store_, clock),
      bulk_use_cases_(store_, clock),
      listing_use_cases_(store_, clock),
      signer_(std::move(signer)),
      history_use_cases_(store_, clock, signer_),
      time_travel_use_cases_(store_, store_.time_travel(), clock),
      idempotent_calls_(store_, clock),
      workers_(config.workers, static_cast<size_t>(config.max_queued_calls)),
      authenticator_(std::move(authenticator)),
      guard_(authenticator_.get()),
      segment_service_(segment_use_cases_, bulk_use_cases_, listing_use_cases_, idempotent_calls_, workers_, guard_),
      user_admin_service_(user_use_cases_, idempotent_calls_, workers_, guard_),
      history_service_(history_use_cases_, time_travel_use_cases_, workers_, guard_,
                       api::HistoryServiceOptions{config.report_link_base_url, config.max_concurrent_reports}),
      expiry_job_(store_, clock, jobs::ExpiryJobOptions{config.expiry_period, config.expiry_batch_size}),
      idempotency_key_cleanup_(store_, clock,
                               jobs::IdempotencyKeyCleanupOptions{.ttl = config.idempotency_key_ttl,
                                                                  .period = config.idempotency_cleanup_period}),
      segment_task_resumer_(store_, clock, jobs::SegmentTaskResumerOptions{.chunks = TaskChunks(config)}) {
  if (config.read_model) {
    // Read-your-writes: a call answers once the model shows its write,
    // without holding its worker meanwhile; other writers (the consumer,
    // jobs) wait on their thread.
    store_.AttachReadModel(read_model_, [this] {
      if (!CompletionScope::Open()) {
        read_model_.AwaitCommitted();
        return;
      }
      CompletionScope::Defer(
          [this](CompletionScope::Finish finish) { read_model_.WhenCommittedVisible(std::move(finish)); });
    });
  }
}

absl::StatusOr<std::unique_ptr<Application>> Application::Start(const config::Config& config,
                                                                const domain::Clock& clock) {
  ASSIGN_OR_RETURN(domain::ReportLinkSigner signer, MakeSigner(config));
  ASSIGN_OR_RETURN(std::unique_ptr<auth::Authenticator> authenticator, MakeAuthenticator(config));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, ServerCredentialsFor(config));
  std::unique_ptr<Application> app(new Application(config, clock, std::move(signer), std::move(authenticator)));
  // Links the health proto's descriptor in, so reflection can describe the
  // built-in health service to grpcurl.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.grpc_listen, credentials, &app->port_);
  // Bulk calls carry up to 100,000 user ids (about 4 MB), gRPC's default limit.
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  builder.RegisterService(&app->segment_service_);
  builder.RegisterService(&app->user_admin_service_);
  builder.RegisterService(&app->history_service_);
  builder.experimental().SetInterceptorCreators(
      api::CallObservers(api::CallObserverOptions{.slow_call_threshold = config.slow_call_threshold}));
  app->server_ = builder.BuildAndStart();
  if (!app->server_ || app->port_ == 0) {
    return absl::UnavailableError("cannot listen on " + config.grpc_listen);
  }
  if (!config.kafka_brokers.empty()) {
    RETURN_IF_ERROR(app->StartUserEvents());
  }
  // Health follows the database: NOT_SERVING until the first ping succeeds.
  app->ShowHealth("", false);
  app->health_watcher_ = std::thread([raw = app.get()] { raw->WatchDatabase(); });
  if (config.read_model) {
    app->ShowReadModelHealth(false);
    app->read_model_.Start();
  }
  app->expiry_job_.Start();
  app->idempotency_key_cleanup_.Start();
  app->segment_task_resumer_.Start();
  app->ExposeState();
  if (!config.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(app->metrics_endpoint_, metrics::HttpEndpoint::Start(config.metrics_listen, metrics::Default()));
    log::Info("serving metrics on port {} (GET /metrics)", app->metrics_endpoint_->port());
  }
  log::Info("serving gRPC on port {}", app->port_);
  return app;
}

absl::Status Application::StartUserEvents() {
  grpc::ChannelArguments args;
  // Reconnect quickly once the user service is back.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  user_directory_ = std::make_unique<ingest::UserServiceClient>(
      grpc::CreateCustomChannel(config_.user_service, grpc::InsecureChannelCredentials(), args),
      ingest::UserServiceClientOptions{.call_timeout = config_.user_service_timeout,
                                       .max_wait = config_.user_service_max_wait});
  ingest::UserEventConsumerOptions options;
  options.brokers = config_.kafka_brokers;
  options.topic = config_.user_events_topic;
  options.group = config_.user_events_group;
  options.dead_letter_topic = config_.user_events_dlq_topic;
  options.kafka_settings = config_.kafka_settings;
  options.max_batch = config_.user_events_batch;
  options.stall_after = config_.user_events_stall_after;
  options.lag_check_period = config_.user_events_lag_check_period;
  ASSIGN_OR_RETURN(user_events_,
                   ingest::UserEventConsumer::Start(std::move(options), *user_directory_, user_use_cases_));
  return absl::OkStatus();
}

void Application::ExposeState() {
  metrics::Registry& registry = metrics::Default();
  scraped_.push_back(metrics::ExposeProcessAndBuild(registry));
  metrics::Gauge& threads = registry.AddGauge("segments_worker_threads", "Threads that run calls' blocking work.");
  metrics::Gauge& queued = registry.AddGauge("segments_worker_queue_depth", "Calls waiting for a worker thread.");
  metrics::Gauge& capacity =
      registry.AddGauge("segments_worker_queue_capacity", "Calls that may wait before new ones are refused.");
  metrics::Gauge& rejected = registry.AddCopiedCounter("segments_worker_rejected_total",
                                                       "Calls refused with UNAVAILABLE: the worker queue was full.");
  scraped_.push_back(registry.OnScrape([this, &threads, &queued, &capacity, &rejected] {
    threads.Set(static_cast<double>(workers_.threads()));
    queued.Set(static_cast<double>(workers_.queued()));
    capacity.Set(static_cast<double>(workers_.max_queued()));
    rejected.Set(static_cast<double>(workers_.rejected()));
  }));
  if (!config_.read_model) return;
  metrics::Gauge& serving =
      registry.AddGauge("segments_read_model_serving", "1 while GetUserSegments is answered from memory.");
  metrics::Gauge& users = registry.AddGauge("segments_read_model_users", "Users with memberships held in memory.");
  metrics::Gauge& memberships = registry.AddGauge("segments_read_model_memberships", "Memberships held in memory.");
  metrics::Gauge& memory =
      registry.AddGauge("segments_read_model_memory_bytes", "Memory the read model's table takes, in bytes.");
  metrics::Gauge& look_age = registry.AddGauge(
      "segments_read_model_look_age_seconds",
      "Time since the start of the last look at the database's changes that was applied (-1: none yet).");
  metrics::Gauge& last_change = registry.AddGauge("segments_read_model_last_change_timestamp_seconds",
                                                  "When the last change was applied from the database (Unix time).");
  metrics::Gauge& full_loads =
      registry.AddCopiedCounter("segments_read_model_full_loads_total",
                                "Times the read model loaded every membership (the first load and each resync).");
  metrics::Family<metrics::Gauge>& reads = registry.AddCopiedCounterFamily(
      "segments_read_model_reads_total", "GetUserSegments reads, by where they were answered from.", {"source"});
  scraped_.push_back(
      registry.OnScrape([this, &serving, &users, &memberships, &memory, &look_age, &last_change, &full_loads, &reads] {
        const readmodel::MembershipReadModel::Stats stats = read_model_.stats();
        serving.Set(read_model_.Serving() ? 1 : 0);
        users.Set(static_cast<double>(stats.users));
        memberships.Set(static_cast<double>(stats.memberships));
        memory.Set(static_cast<double>(stats.memory_bytes));
        look_age.Set(stats.look_age == absl::InfiniteDuration() ? -1 : absl::ToDoubleSeconds(stats.look_age));
        last_change.Set(absl::ToDoubleSeconds(stats.last_change_applied - absl::UnixEpoch()));
        full_loads.Set(static_cast<double>(stats.full_loads));
        reads.With({"memory"}).Set(static_cast<double>(stats.memory_reads));
        reads.With({"database"}).Set(static_cast<double>(stats.database_reads));
      }));
}

void Application::ShowHealth(std::string_view service, bool serving) {
  static metrics::Family<metrics::Gauge>& health = metrics::Default().AddGaugeFamily(
      "segments_health_serving", "1 while the health service says SERVING, by health service name (\"\": the server).",
      {"service"});
  if (service.empty()) {
    server_->GetHealthCheckService()->SetServingStatus(serving);  // every service's, too
  } else {
    server_->GetHealthCheckService()->SetServingStatus(std::string(service), serving);
  }
  health.With({service}).Set(serving ? 1 : 0);
}

void Application::WatchDatabase() {
  bool serving = false;
  bool events_flowing = true;
  for (;;) {
    const bool up = store_.Ping().ok();
    if (up != serving) {
      serving = up;
      ShowHealth("", serving);
      if (serving) {
        log::Info("database is reachable: health SERVING");
      } else {
        log::Warning("database is unreachable: health NOT_SERVING");
      }
    }
    // Set on every round: the server-wide status above overwrites them.
    if (config_.read_model) ShowReadModelHealth(read_model_.Serving());
    if (user_events_) {
      const bool flowing = !user_events_->Stalled();
      ShowHealth(kUserEventsHealth, flowing);
      if (flowing != events_flowing) {
        events_flowing = flowing;
        if (flowing) {
          log::Info("user events are applied again: health of {} SERVING", kUserEventsHealth);
        } else {
          log::Error("user events are stalled: health of {} NOT_SERVING", kUserEventsHealth);
        }
      }
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), config_.health_check_period)) return;
  }
}

void Application::ShowReadModelHealth(bool serving) {
  if (server_) ShowHealth(kReadModelHealth, serving);
}

void Application::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (health_watcher_.joinable()) health_watcher_.join();
  expiry_job_.Stop();
  idempotency_key_cleanup_.Stop();
  segment_task_resumer_.Stop();
  log::Info("shutting down: draining in-flight calls for up to {}", absl::FormatDuration(grace));
  if (server_) {  // null when Start failed before serving
    server_->GetHealthCheckService()->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  }
  // After the drain: the consumer may finish its batch meanwhile.
  if (user_events_) user_events_->Stop();
  workers_.Stop();
  read_model_.Stop();
  pool_.Close();
  log::Info("stopped");
}

Application::~Application() { Shutdown(absl::ZeroDuration()); }

}  // namespace segments::app
