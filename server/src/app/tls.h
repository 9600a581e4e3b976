// The server's transport credentials (docs/auth.md#tls): plaintext, TLS, or
// TLS that requires client certificates (mTLS), from PEM files that gRPC
// reads again when they change.
#pragma once

#include <absl/status/statusor.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "config/config.h"

namespace segments::app {

// Fails, naming the file, when a certificate, key or CA file does not read
// as PEM, or the key is not the certificate's: a server that started with
// them would fail every handshake.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const config::Config& config);

}  // namespace segments::app
