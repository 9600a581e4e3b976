#include "config/config.h"

#include <catch2/catch.hpp>

#include <initializer_list>
#include <map>
#include <string>

using segments::config::Config;
using segments::config::LoadConfig;

namespace {
// A bare environment: authentication is on by default and needs its keys
// and issuer, so every test's environment names them unless it says otherwise.
segments::config::EnvLookup BareEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

segments::config::EnvLookup Env(std::map<std::string, std::string> vars) {
  vars.emplace("SEGMENTS_AUTH_JWKS_FILE", "/etc/segments/jwks.json");
  vars.emplace("SEGMENTS_AUTH_ISSUER", "https://id.example.com");
  return BareEnv(std::move(vars));
}

// Each of `bad` alone is refused, the message naming its flag.
void RefusedNamingTheFlag(std::initializer_list<const char*> bad) {
  for (const char* arg : bad) {
    auto refused = LoadConfig({arg}, Env({}));
    INFO(arg);
    REQUIRE_FALSE(refused.ok());
    const std::string flag(std::string(arg).substr(0, std::string(arg).find('=')));
    CHECK_THAT(std::string(refused.status().message()), Catch::Matchers::Contains(flag));
  }
}
}  // namespace

TEST_CASE("defaults apply when nothing is set", "[config]") {
  auto config = LoadConfig({}, Env({}));
  REQUIRE(config.ok());
  CHECK(config->grpc_listen == "0.0.0.0:50051");
  CHECK(config->db_pool_size == 16);
  CHECK(config->shutdown_grace == absl::Seconds(10));
}

TEST_CASE("flags win over the environment, which wins over defaults", "[config]") {
  auto config = LoadConfig(
      {"--db-pool-size=4", "--grpc-listen", "127.0.0.1:0"},
      Env({{"SEGMENTS_DB_POOL_SIZE", "9"}, {"SEGMENTS_WORKERS", "3"}, {"SEGMENTS_DB_STATEMENT_TIMEOUT", "1500ms"}}));
  REQUIRE(config.ok());
  CHECK(config->db_pool_size == 4);
  CHECK(config->workers == 3);
  CHECK(config->grpc_listen == "127.0.0.1:0");
  CHECK(config->db_statement_timeout == absl::Milliseconds(1500));
}

TEST_CASE("a bad value is refused with the name of its setting", "[config]") {
  auto zero_pool = LoadConfig({"--db-pool-size=0"}, Env({}));
  REQUIRE_FALSE(zero_pool.ok());
  CHECK_THAT(std::string(zero_pool.status().message()), Catch::Contains("--db-pool-size"));

  auto bad_env = LoadConfig({}, Env({{"SEGMENTS_SHUTDOWN_GRACE", "soon"}}));
  REQUIRE_FALSE(bad_env.ok());
  CHECK_THAT(std::string(bad_env.status().message()), Catch::Contains("SEGMENTS_SHUTDOWN_GRACE"));

  CHECK_FALSE(LoadConfig({"--grpc-listen=nohostport"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--grpc-listen=h:70000"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--log-level=loud"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--log-format=xml"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--metrics-listen=9090"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--slow-call-threshold=0s"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--database-url="}, Env({})).ok());
}

TEST_CASE("metrics and logs: off and text by default, set by flag or environment", "[config]") {
  auto defaults = LoadConfig({}, Env({}));
  REQUIRE(defaults.ok());
  CHECK(defaults->metrics_listen.empty());
  CHECK(defaults->log_format == "text");
  CHECK(defaults->slow_call_threshold == absl::Milliseconds(500));
  auto set = LoadConfig({"--metrics-listen=127.0.0.1:9464", "--slow-call-threshold=50ms"},
                        Env({{"SEGMENTS_LOG_FORMAT", "json"}}));
  REQUIRE(set.ok());
  CHECK(set->metrics_listen == "127.0.0.1:9464");
  CHECK(set->log_format == "json");
  CHECK(set->slow_call_threshold == absl::Milliseconds(50));
}

TEST_CASE("unknown flags, stray arguments and missing values are refused", "[config]") {
  CHECK_THAT(std::string(LoadConfig({"--no-such-flag=1"}, Env({})).status().message()),
             Catch::Contains("unknown flag --no-such-flag"));
  CHECK_FALSE(LoadConfig({"positional"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--workers"}, Env({})).ok());
}

TEST_CASE("usage lists every flag with its environment variable", "[config]") {
  const std::string usage = segments::config::Usage();
  CHECK_THAT(usage, Catch::Contains("--database-url") && Catch::Contains("SEGMENTS_DATABASE_URL"));
  CHECK_THAT(usage, Catch::Contains("--shutdown-grace") && Catch::Contains("SEGMENTS_SHUTDOWN_GRACE"));
}

TEST_CASE("the user-event consumer is off by default and needs the user service when on", "[config]") {
  auto off = LoadConfig({}, Env({}));
  REQUIRE(off.ok());
  CHECK(off->kafka_brokers.empty());
  CHECK(off->user_events_topic == "UserAction");
  CHECK(off->user_events_group == "segments");
  CHECK(off->user_events_dlq_topic == "UserAction.dlq");

  auto missing = LoadConfig({"--kafka-brokers=k:9092"}, Env({}));
  CHECK(missing.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(missing.status().message()), Catch::Matchers::Contains("--user-service"));

  auto on = LoadConfig({"--kafka-brokers=k1:9092,k2:9092", "--user-events-topic=Users"},
                       Env({{"SEGMENTS_USER_SERVICE", "users:50061"},
                            {"SEGMENTS_KAFKA_SETTINGS", "security.protocol=SASL_SSL, sasl.mechanism=PLAIN"},
                            {"SEGMENTS_USER_SERVICE_TIMEOUT", "250ms"}}));
  REQUIRE(on.ok());
  CHECK(on->kafka_brokers == "k1:9092,k2:9092");
  CHECK(on->user_events_topic == "Users");
  CHECK(on->user_service == "users:50061");
  CHECK(on->user_service_timeout == absl::Milliseconds(250));
  CHECK(on->kafka_settings == std::vector<std::pair<std::string, std::string>>{{"security.protocol", "SASL_SSL"},
                                                                               {"sasl.mechanism", "PLAIN"}});
  CHECK_FALSE(LoadConfig({"--kafka-settings=novalue"}, Env({})).ok());
  // The delivery guarantee cannot be switched off from outside.
  auto auto_commit = LoadConfig({"--kafka-settings=enable.auto.commit=true"}, Env({}));
  CHECK_THAT(std::string(auto_commit.status().message()), Catch::Matchers::Contains("enable.auto.commit"));
  CHECK_FALSE(LoadConfig({"--kafka-settings=group.id=other"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--user-events-topic="}, Env({})).ok());
}

TEST_CASE("the read model is on by default, can be switched off, and must look more often than its lag bound",
          "[config]") {
  auto defaults = LoadConfig({}, Env({}));
  REQUIRE(defaults.ok());
  CHECK(defaults->read_model);
  CHECK(defaults->read_model_poll_period == absl::Milliseconds(100));
  CHECK(defaults->read_model_max_lag == absl::Seconds(1));
  auto off = LoadConfig({}, Env({{"SEGMENTS_READ_MODEL", "off"}}));
  REQUIRE(off.ok());
  CHECK_FALSE(off->read_model);
  CHECK_FALSE(LoadConfig({"--read-model=yes"}, Env({})).ok());
  auto slow = LoadConfig({"--read-model-poll-period=2s", "--read-model-max-lag=2s"}, Env({}));
  CHECK_THAT(std::string(slow.status().message()), Catch::Matchers::Contains("--read-model-max-lag"));
  // Switched off, the two do not matter.
  CHECK(LoadConfig({"--read-model=off", "--read-model-poll-period=2s", "--read-model-max-lag=2s"}, Env({})).ok());
}

TEST_CASE("idempotency keys are kept 24h by default and forgotten every minute; both can be set", "[config]") {
  auto defaults = LoadConfig({}, Env({}));
  REQUIRE(defaults.ok());
  CHECK(defaults->idempotency_key_ttl == absl::Hours(24));
  CHECK(defaults->idempotency_cleanup_period == absl::Minutes(1));
  auto set = LoadConfig({"--idempotency-key-ttl=48h"}, Env({{"SEGMENTS_IDEMPOTENCY_CLEANUP_PERIOD", "5s"}}));
  REQUIRE(set.ok());
  CHECK(set->idempotency_key_ttl == absl::Hours(48));
  CHECK(set->idempotency_cleanup_period == absl::Seconds(5));
  RefusedNamingTheFlag({"--idempotency-key-ttl=0s", "--idempotency-key-ttl=721h", "--idempotency-key-ttl=day",
                        "--idempotency-cleanup-period=1ms", "--idempotency-cleanup-period=2h"});
}

TEST_CASE("segment tasks start with chunks of 500 users sized to 25 ms, without a pause; all can be set", "[config]") {
  auto defaults = LoadConfig({}, Env({}));
  REQUIRE(defaults.ok());
  CHECK(defaults->segment_task_chunk_users == 500);
  CHECK(defaults->segment_task_chunk_time == absl::Milliseconds(25));
  CHECK(defaults->segment_task_pause == absl::ZeroDuration());
  auto set = LoadConfig({"--segment-task-chunk-users=2000", "--segment-task-chunk-time=0s"},
                        Env({{"SEGMENTS_SEGMENT_TASK_PAUSE", "5ms"}}));
  REQUIRE(set.ok());
  CHECK(set->segment_task_chunk_users == 2000);
  CHECK(set->segment_task_chunk_time == absl::ZeroDuration());
  CHECK(set->segment_task_pause == absl::Milliseconds(5));
  RefusedNamingTheFlag({"--segment-task-chunk-users=0", "--segment-task-chunk-users=many",
                        "--segment-task-chunk-time=11s", "--segment-task-pause=-1s"});
}

TEST_CASE("authentication is on by default and needs one key file and the issuer", "[config]") {
  auto bare = LoadConfig({}, BareEnv({}));
  REQUIRE_FALSE(bare.ok());
  CHECK_THAT(std::string(bare.status().message()), Catch::Contains("--auth-jwks-file"));
  CHECK_THAT(std::string(bare.status().message()), Catch::Contains("--auth=off"));

  auto no_issuer = LoadConfig({"--auth-jwks-file=/keys/jwks.json"}, BareEnv({}));
  REQUIRE_FALSE(no_issuer.ok());
  CHECK_THAT(std::string(no_issuer.status().message()), Catch::Contains("--auth-issuer"));

  auto both = LoadConfig({"--auth-hs256-secret-file=/keys/secret"}, Env({}));
  REQUIRE_FALSE(both.ok());

  auto on = LoadConfig({}, Env({}));
  REQUIRE(on.ok());
  CHECK(on->auth);
  CHECK(on->auth_jwks_file == "/etc/segments/jwks.json");
  CHECK(on->auth_audience == "segments");
  CHECK(on->auth_roles_claim == "roles");
  CHECK(on->auth_clock_skew == absl::Seconds(30));

  auto off = LoadConfig({"--auth=off"}, BareEnv({}));
  REQUIRE(off.ok());
  CHECK_FALSE(off->auth);
  RefusedNamingTheFlag({"--auth=maybe", "--auth-audience=", "--auth-clock-skew=1h", "--auth-keys-reload-period=1ms"});
}

TEST_CASE("TLS needs a certificate and its key together; mTLS needs TLS", "[config]") {
  auto plain = LoadConfig({}, Env({}));
  REQUIRE(plain.ok());
  CHECK(plain->tls_cert_file.empty());
  CHECK(plain->tls_reload_period == absl::Seconds(10));
  CHECK_FALSE(LoadConfig({"--tls-cert-file=/tls/server.pem"}, Env({})).ok());
  CHECK_FALSE(LoadConfig({"--tls-key-file=/tls/server.key"}, Env({})).ok());
  auto no_tls = LoadConfig({"--tls-client-ca-file=/tls/ca.pem"}, Env({}));
  REQUIRE_FALSE(no_tls.ok());
  CHECK_THAT(std::string(no_tls.status().message()), Catch::Contains("mTLS is TLS"));
  auto mutual = LoadConfig(
      {"--tls-cert-file=/tls/server.pem", "--tls-key-file=/tls/server.key", "--tls-client-ca-file=/tls/ca.pem"},
      Env({}));
  REQUIRE(mutual.ok());
  CHECK(mutual->tls_client_ca_file == "/tls/ca.pem");
  RefusedNamingTheFlag({"--tls-reload-period=10ms"});
}
