// Server configuration: each setting is a flag with an environment fallback
// and a default, validated at start (a bad value names itself and exits).
#pragma once

#include <absl/status/statusor.h>
#include <absl/time/time.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace segments::config {

struct Config {
  std::string grpc_listen = "0.0.0.0:50051";
  // libpq URI or key=value string. Secrets belong in the environment
  // (SEGMENTS_DATABASE_URL or libpq's PGPASSWORD), not in flags.
  std::string database_url = "postgresql://postgres@127.0.0.1:5432/segments";
  int db_pool_size = 16;
  int workers = 16;
  int max_queued_calls = 10000;
  absl::Duration db_connect_timeout = absl::Seconds(2);
  absl::Duration db_statement_timeout = absl::Seconds(30);
  absl::Duration db_set_statement_timeout = absl::Minutes(10);
  absl::Duration db_acquire_timeout = absl::Seconds(2);
  absl::Duration health_check_period = absl::Seconds(2);
  absl::Duration shutdown_grace = absl::Seconds(10);
  std::string log_level = "info";
  std::string log_format = "text";  // or "json"

  // Operating (docs/operating.md): Prometheus metrics on their own port
  // (empty: none; metrics are kept either way), and the threshold past which a
  // unary call is logged as slow.
  std::string metrics_listen;
  absl::Duration slow_call_threshold = absl::Milliseconds(500);

  // Authentication (docs/auth.md): on, every call but health, reflection
  // and report downloads needs a bearer token (a JWT) whose roles cover it.
  // Off is for local experiments only. Exactly one of the key files: a JWKS
  // of public keys (ES256, RS256), or an HS256 secret (development only).
  bool auth = true;
  std::string auth_jwks_file;
  std::string auth_hs256_secret_file;
  std::string auth_issuer;
  std::string auth_audience = "segments";
  std::string auth_roles_claim = "roles";
  absl::Duration auth_clock_skew = absl::Seconds(30);
  absl::Duration auth_keys_reload_period = absl::Seconds(2);

  // TLS (docs/auth.md#tls): with a certificate and key (PEM) the server
  // serves TLS only; with a client CA too it requires and verifies client
  // certificates (mTLS). The files are checked for changes every
  // tls_reload_period, so certificates rotate without a restart.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  absl::Duration tls_reload_period = absl::Seconds(10);

  // History reports. Keys are "id:secret,..." (secrets of 32+ bytes; the
  // first key signs, all verify). Empty: a random key per process, so links
  // work only on the instance that made them and only until it restarts.
  std::string report_link_keys;
  absl::Duration report_link_ttl = absl::Hours(4);
  std::string report_link_base_url;
  int max_concurrent_reports = 4;

  // The membership read model (docs/read-model.md): GetUserSegments from
  // memory, kept current from the database's change notes. Off: every read
  // goes to the database.
  bool read_model = true;
  // How often the model looks for changes nobody announced (made by hand in
  // SQL, or an announcement lost); announced ones are looked for at once.
  absl::Duration read_model_poll_period = absl::Milliseconds(100);
  // Reads go to the database while the model's last look is older than
  // this: the bound on how stale an answer from memory can be.
  absl::Duration read_model_max_lag = absl::Seconds(1);

  // TTL expiry job.
  absl::Duration expiry_period = absl::Seconds(10);
  int expiry_batch_size = 1000;

  // Changes of a whole segment (docs/writes.md): users of the first chunk
  // (each chunk a transaction), the time later chunks are sized to (zero:
  // all of the first one's size), and a pause after each chunk that lets
  // other writers' work through between chunks.
  int segment_task_chunk_users = 500;
  absl::Duration segment_task_chunk_time = absl::Milliseconds(25);
  absl::Duration segment_task_pause = absl::ZeroDuration();

  // Idempotency keys (docs/behaviour.md#idempotency-keys): how long a key is
  // remembered at least, and how often older ones are forgotten.
  absl::Duration idempotency_key_ttl = absl::Hours(24);
  absl::Duration idempotency_cleanup_period = absl::Minutes(1);

  // Users from Kafka (contract §6). No brokers: the consumer is off, and the
  // replica changes only through UserAdminService.
  std::string kafka_brokers;
  std::string user_events_topic = "UserAction";
  std::string user_events_group = "segments";
  std::string user_events_dlq_topic = "UserAction.dlq";
  int user_events_batch = 1000;
  // A batch failing this long turns the health of segmentation.v1.UserEvents
  // to NOT_SERVING.
  // Also when a partition has events waiting and no commit for that long;
  // each partition's lag is asked of the broker this often.
  absl::Duration user_events_stall_after = absl::Seconds(30);
  absl::Duration user_events_lag_check_period = absl::Seconds(5);
  // Further librdkafka settings, e.g. security.protocol=SASL_SSL.
  std::vector<std::pair<std::string, std::string>> kafka_settings;
  // The user service (userservice.v1) that events are looked up in;
  // required with kafka_brokers.
  std::string user_service;
  absl::Duration user_service_timeout = absl::Seconds(1);
  absl::Duration user_service_max_wait = absl::Seconds(5);
};

// Reads the environment, e.g. std::getenv; injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();

// Flags (`--name=value` or `--name value`) win over the environment, which
// wins over defaults. Unknown flags and bad values are INVALID_ARGUMENT
// naming the setting.
absl::StatusOr<Config> LoadConfig(const std::vector<std::string>& args, const EnvLookup& env);

// Every setting with its flag, environment variable, default and meaning.
std::string Usage();

}  // namespace segments::config
