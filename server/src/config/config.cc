#include "config/config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/match.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_split.h>
#include <absl/strings/strip.h>
#include <fmt/format.h>

#include <cstdlib>

namespace segments::config {
namespace {

struct Setting {
  const char* flag;
  const char* env;
  const char* help;
  // Parses `value` into the config; returns a problem description or "".
  std::function<std::string(Config&, const std::string& value)> apply;
  std::function<std::string(const Config&)> show;
};

std::function<std::string(Config&, const std::string&)> IntIn(int Config::*field, int min, int max) {
  return [=](Config& c, const std::string& v) -> std::string {
    int parsed = 0;
    if (!absl::SimpleAtoi(v, &parsed) || parsed < min || parsed > max) {
      return fmt::format("must be an integer in {}..{}", min, max);
    }
    c.*field = parsed;
    return "";
  };
}

std::function<std::string(Config&, const std::string&)> DurationIn(absl::Duration Config::*field, absl::Duration min,
                                                                   absl::Duration max) {
  return [=](Config& c, const std::string& v) -> std::string {
    absl::Duration parsed;
    if (!absl::ParseDuration(v, &parsed) || parsed < min || parsed > max) {
      return fmt::format("must be a duration such as 500ms or 2s, in {}..{}", absl::FormatDuration(min),
                         absl::FormatDuration(max));
    }
    c.*field = parsed;
    return "";
  };
}

// Any text, empty included (empty usually means "off").
std::function<std::string(Config&, const std::string&)> AnyText(std::string Config::*field) {
  return [=](Config& c, const std::string& v) -> std::string {
    c.*field = v;
    return "";
  };
}

// The setting's value as is.
std::function<std::string(const Config&)> Shown(std::string Config::*field) {
  return [=](const Config& c) { return c.*field; };
}

std::function<std::string(Config&, const std::string&)> NonEmpty(std::string Config::*field) {
  return [=](Config& c, const std::string& v) -> std::string {
    if (v.empty()) return "must not be empty";
    c.*field = v;
    return "";
  };
}

// A listen address, host:port (or empty, when `optional`).
std::function<std::string(Config&, const std::string&)> HostPort(std::string Config::*field, bool optional) {
  return [=](Config& c, const std::string& v) -> std::string {
    const auto colon = v.rfind(':');
    int port = 0;
    const bool empty_ok = optional && v.empty();
    if (!empty_ok && (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(v.substr(colon + 1), &port) ||
                      port < 0 || port > 65535)) {
      return optional ? "must be host:port, or empty" : "must be host:port";
    }
    c.*field = v;
    return "";
  };
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> settings = {
      {"grpc-listen", "SEGMENTS_GRPC_LISTEN", "gRPC listen address host:port (port 0 picks a free one)",
       HostPort(&Config::grpc_listen, false), Shown(&Config::grpc_listen)},
      {"database-url", "SEGMENTS_DATABASE_URL", "PostgreSQL connection string (libpq URI or key=value)",
       NonEmpty(&Config::database_url), [](const Config& c) { return c.database_url; }},
      {"db-pool-size", "SEGMENTS_DB_POOL_SIZE", "database connections at most", IntIn(&Config::db_pool_size, 1, 1000),
       [](const Config& c) { return std::to_string(c.db_pool_size); }},
      {"workers", "SEGMENTS_WORKERS", "threads that run database work for calls", IntIn(&Config::workers, 1, 1000),
       [](const Config& c) { return std::to_string(c.workers); }},
      {"max-queued-calls", "SEGMENTS_MAX_QUEUED_CALLS", "calls waiting for a worker before new ones get UNAVAILABLE",
       IntIn(&Config::max_queued_calls, 1, 10'000'000),
       [](const Config& c) { return std::to_string(c.max_queued_calls); }},
      {"db-connect-timeout", "SEGMENTS_DB_CONNECT_TIMEOUT", "time to open a database connection",
       DurationIn(&Config::db_connect_timeout, absl::Seconds(1), absl::Minutes(1)),
       [](const Config& c) { return absl::FormatDuration(c.db_connect_timeout); }},
      {"db-statement-timeout", "SEGMENTS_DB_STATEMENT_TIMEOUT", "longest a single SQL statement may run",
       DurationIn(&Config::db_statement_timeout, absl::Milliseconds(10), absl::Hours(1)),
       [](const Config& c) { return absl::FormatDuration(c.db_statement_timeout); }},
      {"db-set-statement-timeout", "SEGMENTS_DB_SET_STATEMENT_TIMEOUT",
       "longest a statement over a whole segment or all users may run (percentages, bulk changes, deletions)",
       DurationIn(&Config::db_set_statement_timeout, absl::Seconds(1), absl::Hours(24)),
       [](const Config& c) { return absl::FormatDuration(c.db_set_statement_timeout); }},
      {"db-acquire-timeout", "SEGMENTS_DB_ACQUIRE_TIMEOUT", "wait for a free pooled connection",
       DurationIn(&Config::db_acquire_timeout, absl::Milliseconds(1), absl::Minutes(1)),
       [](const Config& c) { return absl::FormatDuration(c.db_acquire_timeout); }},
      {"health-check-period", "SEGMENTS_HEALTH_CHECK_PERIOD", "how often the database is pinged for grpc.health",
       DurationIn(&Config::health_check_period, absl::Milliseconds(100), absl::Minutes(10)),
       [](const Config& c) { return absl::FormatDuration(c.health_check_period); }},
      {"shutdown-grace", "SEGMENTS_SHUTDOWN_GRACE", "on SIGTERM, time in-flight calls get to finish",
       DurationIn(&Config::shutdown_grace, absl::ZeroDuration(), absl::Minutes(10)),
       [](const Config& c) { return absl::FormatDuration(c.shutdown_grace); }},
      {"log-level", "SEGMENTS_LOG_LEVEL", "debug, info, warning or error",
       [](Config& c, const std::string& v) -> std::string {
         if (v != "debug" && v != "info" && v != "warning" && v != "error") {
           return "must be debug, info, warning or error";
         }
         c.log_level = v;
         return "";
       },
       [](const Config& c) { return c.log_level; }},
      {"log-format", "SEGMENTS_LOG_FORMAT", "text (a line per event) or json (an object per line)",
       [](Config& c, const std::string& v) -> std::string {
         if (v != "text" && v != "json") return "must be text or json";
         c.log_format = v;
         return "";
       },
       Shown(&Config::log_format)},
      {"slow-call-threshold", "SEGMENTS_SLOW_CALL_THRESHOLD",
       "a unary call that takes longer is logged (with its request id) as slow",
       DurationIn(&Config::slow_call_threshold, absl::Milliseconds(1), absl::Hours(1)),
       [](const Config& c) { return absl::FormatDuration(c.slow_call_threshold); }},
      {"metrics-listen", "SEGMENTS_METRICS_LISTEN",
       "host:port where GET /metrics answers in Prometheus' text format; empty: no metrics port",
       HostPort(&Config::metrics_listen, true), Shown(&Config::metrics_listen)},
      {"auth", "SEGMENTS_AUTH",
       "on: calls need a bearer token (JWT) whose roles cover them; off: no checks (local experiments only)",
       [](Config& c, const std::string& v) -> std::string {
         if (v != "on" && v != "off") return "must be on or off";
         c.auth = v == "on";
         return "";
       },
       [](const Config& c) { return std::string(c.auth ? "on" : "off"); }},
      {"auth-jwks-file", "SEGMENTS_AUTH_JWKS_FILE",
       "JWKS file of the public keys tokens are signed with (ES256, RS256); re-read when it changes",
       AnyText(&Config::auth_jwks_file), Shown(&Config::auth_jwks_file)},
      {"auth-hs256-secret-file", "SEGMENTS_AUTH_HS256_SECRET_FILE",
       "development only, instead of a JWKS: a file holding an HS256 shared secret (32+ bytes)",
       AnyText(&Config::auth_hs256_secret_file), Shown(&Config::auth_hs256_secret_file)},
      {"auth-issuer", "SEGMENTS_AUTH_ISSUER", "the \"iss\" tokens must carry (required with --auth=on)",
       AnyText(&Config::auth_issuer), Shown(&Config::auth_issuer)},
      {"auth-audience", "SEGMENTS_AUTH_AUDIENCE", "the \"aud\" tokens must hold", NonEmpty(&Config::auth_audience),
       Shown(&Config::auth_audience)},
      {"auth-roles-claim", "SEGMENTS_AUTH_ROLES_CLAIM",
       "the claim holding the roles: a name, or a dotted path such as realm_access.roles",
       NonEmpty(&Config::auth_roles_claim), Shown(&Config::auth_roles_claim)},
      {"auth-clock-skew", "SEGMENTS_AUTH_CLOCK_SKEW", "difference allowed between our clock and the issuer's",
       DurationIn(&Config::auth_clock_skew, absl::ZeroDuration(), absl::Minutes(10)),
       [](const Config& c) { return absl::FormatDuration(c.auth_clock_skew); }},
      {"auth-keys-reload-period", "SEGMENTS_AUTH_KEYS_RELOAD_PERIOD", "how often the key file is checked for changes",
       DurationIn(&Config::auth_keys_reload_period, absl::Milliseconds(10), absl::Minutes(10)),
       [](const Config& c) { return absl::FormatDuration(c.auth_keys_reload_period); }},
      {"tls-cert-file", "SEGMENTS_TLS_CERT_FILE",
       "PEM certificate chain to serve TLS with (with --tls-key-file; empty: plaintext)",
       AnyText(&Config::tls_cert_file), Shown(&Config::tls_cert_file)},
      {"tls-key-file", "SEGMENTS_TLS_KEY_FILE", "PEM private key of --tls-cert-file", AnyText(&Config::tls_key_file),
       Shown(&Config::tls_key_file)},
      {"tls-client-ca-file", "SEGMENTS_TLS_CLIENT_CA_FILE",
       "PEM CA certificates: clients must present a certificate they signed (mTLS; empty: not asked)",
       AnyText(&Config::tls_client_ca_file), Shown(&Config::tls_client_ca_file)},
      {"tls-reload-period", "SEGMENTS_TLS_RELOAD_PERIOD", "how often the TLS files are checked for changes",
       DurationIn(&Config::tls_reload_period, absl::Seconds(1), absl::Hours(24)),
       [](const Config& c) { return absl::FormatDuration(c.tls_reload_period); }},
      {"report-link-keys", "SEGMENTS_REPORT_LINK_KEYS",
       "keys that sign report links, id:secret[,id:secret...]; the first signs, all verify (secret: 32+ bytes)",
       AnyText(&Config::report_link_keys),
       [](const Config& c) { return c.report_link_keys.empty() ? std::string("a random key per process") : "(set)"; }},
      {"report-link-ttl", "SEGMENTS_REPORT_LINK_TTL", "how long a report link works",
       DurationIn(&Config::report_link_ttl, absl::Seconds(1), absl::Hours(24 * 30)),
       [](const Config& c) { return absl::FormatDuration(c.report_link_ttl); }},
      {"report-link-base-url", "SEGMENTS_REPORT_LINK_BASE_URL",
       "public HTTP address report links start with, e.g. https://segments.example.com (empty: the gateway's Host)",
       [](Config& c, const std::string& v) -> std::string {
         if (!v.empty() && !absl::StartsWith(v, "http://") && !absl::StartsWith(v, "https://")) {
           return "must start with http:// or https://";
         }
         c.report_link_base_url = v;
         while (absl::EndsWith(c.report_link_base_url, "/")) c.report_link_base_url.pop_back();
         return "";
       },
       [](const Config& c) { return c.report_link_base_url; }},
      {"read-model", "SEGMENTS_READ_MODEL",
       "on: GetUserSegments answered from memberships held in memory; off: from the database",
       [](Config& c, const std::string& v) -> std::string {
         if (v != "on" && v != "off") return "must be on or off";
         c.read_model = v == "on";
         return "";
       },
       [](const Config& c) { return std::string(c.read_model ? "on" : "off"); }},
      {"read-model-poll-period", "SEGMENTS_READ_MODEL_POLL_PERIOD",
       "how often the read model looks for changes no instance announced",
       DurationIn(&Config::read_model_poll_period, absl::Milliseconds(1), absl::Seconds(10)),
       [](const Config& c) { return absl::FormatDuration(c.read_model_poll_period); }},
      {"read-model-max-lag", "SEGMENTS_READ_MODEL_MAX_LAG",
       "reads go to the database while the read model's last look is older than this",
       DurationIn(&Config::read_model_max_lag, absl::Milliseconds(10), absl::Minutes(1)),
       [](const Config& c) { return absl::FormatDuration(c.read_model_max_lag); }},
      {"max-concurrent-reports", "SEGMENTS_MAX_CONCURRENT_REPORTS",
       "reports streaming at once (each holds a database connection)", IntIn(&Config::max_concurrent_reports, 1, 1000),
       [](const Config& c) { return std::to_string(c.max_concurrent_reports); }},
      {"expiry-period", "SEGMENTS_EXPIRY_PERIOD", "how often the TTL expiry job ends memberships past their deadline",
       DurationIn(&Config::expiry_period, absl::Milliseconds(10), absl::Hours(1)),
       [](const Config& c) { return absl::FormatDuration(c.expiry_period); }},
      {"expiry-batch-size", "SEGMENTS_EXPIRY_BATCH_SIZE", "memberships the expiry job ends per transaction",
       IntIn(&Config::expiry_batch_size, 1, 100'000),
       [](const Config& c) { return std::to_string(c.expiry_batch_size); }},
      {"segment-task-chunk-users", "SEGMENTS_SEGMENT_TASK_CHUNK_USERS",
       "users of the first transaction when a segment is filled, its percentage changes or it is deleted",
       IntIn(&Config::segment_task_chunk_users, 1, 1'000'000),
       [](const Config& c) { return std::to_string(c.segment_task_chunk_users); }},
      {"segment-task-chunk-time", "SEGMENTS_SEGMENT_TASK_CHUNK_TIME",
       "later chunks are sized to take about this long each (0: all as big as the first)",
       DurationIn(&Config::segment_task_chunk_time, absl::ZeroDuration(), absl::Seconds(10)),
       [](const Config& c) { return absl::FormatDuration(c.segment_task_chunk_time); }},
      {"segment-task-pause", "SEGMENTS_SEGMENT_TASK_PAUSE",
       "pause after each such transaction, leaving the database to other writers for a moment",
       DurationIn(&Config::segment_task_pause, absl::ZeroDuration(), absl::Seconds(10)),
       [](const Config& c) { return absl::FormatDuration(c.segment_task_pause); }},
      {"idempotency-key-ttl", "SEGMENTS_IDEMPOTENCY_KEY_TTL",
       "how long an idempotency key and the outcome stored with it are remembered, at least",
       DurationIn(&Config::idempotency_key_ttl, absl::Seconds(1), absl::Hours(24 * 30)),
       [](const Config& c) { return absl::FormatDuration(c.idempotency_key_ttl); }},
      {"idempotency-cleanup-period", "SEGMENTS_IDEMPOTENCY_CLEANUP_PERIOD",
       "how often idempotency keys older than their TTL are forgotten",
       DurationIn(&Config::idempotency_cleanup_period, absl::Milliseconds(10), absl::Hours(1)),
       [](const Config& c) { return absl::FormatDuration(c.idempotency_cleanup_period); }},
      {"kafka-brokers", "SEGMENTS_KAFKA_BROKERS",
       "Kafka bootstrap servers host:port[,host:port...] for user events (empty: the consumer is off)",
       AnyText(&Config::kafka_brokers),
       [](const Config& c) { return c.kafka_brokers.empty() ? std::string("off") : c.kafka_brokers; }},
      {"user-events-topic", "SEGMENTS_USER_EVENTS_TOPIC", "topic of the user service's events",
       NonEmpty(&Config::user_events_topic), [](const Config& c) { return c.user_events_topic; }},
      {"user-events-group", "SEGMENTS_USER_EVENTS_GROUP", "consumer group of the user events",
       NonEmpty(&Config::user_events_group), [](const Config& c) { return c.user_events_group; }},
      {"user-events-dlq-topic", "SEGMENTS_USER_EVENTS_DLQ_TOPIC", "topic that malformed user events are copied to",
       NonEmpty(&Config::user_events_dlq_topic), [](const Config& c) { return c.user_events_dlq_topic; }},
      {"user-events-batch", "SEGMENTS_USER_EVENTS_BATCH", "most user events applied in one transaction",
       IntIn(&Config::user_events_batch, 1, 10'000),
       [](const Config& c) { return std::to_string(c.user_events_batch); }},
      {"user-events-stall-after", "SEGMENTS_USER_EVENTS_STALL_AFTER",
       "a batch failing this long, or a partition with events waiting and no commit, turns the health of "
       "segmentation.v1.UserEvents to NOT_SERVING",
       DurationIn(&Config::user_events_stall_after, absl::Milliseconds(100), absl::Hours(1)),
       [](const Config& c) { return absl::FormatDuration(c.user_events_stall_after); }},
      {"user-events-lag-check-period", "SEGMENTS_USER_EVENTS_LAG_CHECK_PERIOD",
       "how often each assigned partition's lag is asked of the broker (at most a third of the stall time)",
       DurationIn(&Config::user_events_lag_check_period, absl::Milliseconds(100), absl::Minutes(10)),
       [](const Config& c) { return absl::FormatDuration(c.user_events_lag_check_period); }},
      {"kafka-settings", "SEGMENTS_KAFKA_SETTINGS",
       "further librdkafka settings, name=value[,name=value...] (e.g. security.protocol=SASL_SSL)",
       [](Config& c, const std::string& v) -> std::string {
         c.kafka_settings.clear();
         for (absl::string_view item : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           const auto eq = item.find('=');
           if (eq == absl::string_view::npos || eq == 0) return "each item must be name=value";
           std::string name(absl::StripAsciiWhitespace(item.substr(0, eq)));
           // These carry the delivery guarantee or have flags of their own.
           for (const char* owned :
                {"bootstrap.servers", "group.id", "enable.auto.commit", "enable.auto.offset.store"}) {
             if (name == owned) return fmt::format("{} is set by the server itself and cannot be changed here", name);
           }
           c.kafka_settings.emplace_back(std::move(name), std::string(absl::StripAsciiWhitespace(item.substr(eq + 1))));
         }
         return "";
       },
       [](const Config& c) { return c.kafka_settings.empty() ? std::string("none") : std::string("(set)"); }},
      {"user-service", "SEGMENTS_USER_SERVICE", "user service gRPC address host:port (required with --kafka-brokers)",
       AnyText(&Config::user_service), Shown(&Config::user_service)},
      {"user-service-timeout", "SEGMENTS_USER_SERVICE_TIMEOUT", "deadline of one call to the user service",
       DurationIn(&Config::user_service_timeout, absl::Milliseconds(10), absl::Minutes(1)),
       [](const Config& c) { return absl::FormatDuration(c.user_service_timeout); }},
      {"user-service-max-wait", "SEGMENTS_USER_SERVICE_MAX_WAIT",
       "longest a lookup retries the user service before the batch backs off and tries again",
       // Well below librdkafka's max.poll.interval.ms (5 min): a batch that
       // takes longer loses its partitions mid-way.
       DurationIn(&Config::user_service_max_wait, absl::Milliseconds(10), absl::Minutes(1)),
       [](const Config& c) { return absl::FormatDuration(c.user_service_max_wait); }},
  };
  return settings;
}

const Setting* FindSetting(std::string_view flag) {
  for (const Setting& s : Settings()) {
    if (flag == s.flag) return &s;
  }
  return nullptr;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<Config> LoadConfig(const std::vector<std::string>& args, const EnvLookup& env) {
  Config config;
  std::vector<std::pair<const Setting*, std::string>> from_flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--")) return absl::InvalidArgumentError(fmt::format("unexpected argument '{}'", arg));
    std::string name = arg.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(fmt::format("--{} needs a value", name));
    }
    const Setting* setting = FindSetting(name);
    if (setting == nullptr) return absl::InvalidArgumentError(fmt::format("unknown flag --{}", name));
    from_flags.emplace_back(setting, value);
  }
  for (const Setting& s : Settings()) {
    if (auto value = env(s.env)) {
      if (std::string problem = s.apply(config, *value); !problem.empty()) {
        return absl::InvalidArgumentError(fmt::format("{}='{}': {}", s.env, *value, problem));
      }
    }
  }
  for (const auto& [s, value] : from_flags) {
    if (std::string problem = s->apply(config, value); !problem.empty()) {
      return absl::InvalidArgumentError(fmt::format("--{}='{}': {}", s->flag, value, problem));
    }
  }
  if (!config.kafka_brokers.empty() && config.user_service.empty()) {
    return absl::InvalidArgumentError(
        "--user-service (SEGMENTS_USER_SERVICE) is required when --kafka-brokers is set: events are looked up there");
  }
  if (config.auth) {
    if (config.auth_jwks_file.empty() == config.auth_hs256_secret_file.empty()) {
      return absl::InvalidArgumentError(
          "--auth=on needs exactly one of --auth-jwks-file and --auth-hs256-secret-file (scripts/up.sh makes a "
          "local key pair and tokens; --auth=off turns authentication off, for local experiments only)");
    }
    if (config.auth_issuer.empty()) {
      return absl::InvalidArgumentError("--auth=on needs --auth-issuer (SEGMENTS_AUTH_ISSUER): the iss tokens carry");
    }
  }
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert-file and --tls-key-file go together");
  }
  if (!config.tls_client_ca_file.empty() && config.tls_cert_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file (mTLS is TLS)");
  }
  if (config.read_model && config.read_model_poll_period >= config.read_model_max_lag) {
    return absl::InvalidArgumentError(
        "--read-model-poll-period must be shorter than --read-model-max-lag: otherwise an idle instance's model "
        "counts as stale between looks and reads go to the database");
  }
  return config;
}

std::string Usage() {
  const Config defaults;
  std::string out =
      "Usage: segments-server [--flag=value ...]\n\nEvery flag falls back to its environment variable, then to its "
      "default.\n\n";
  for (const Setting& s : Settings()) {
    out += fmt::format("  --{:<24} {:<34} {} (default: {})\n", s.flag, s.env, s.help, s.show(defaults));
  }
  return out;
}

}  // namespace segments::config
