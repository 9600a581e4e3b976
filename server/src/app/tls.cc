#include "app/tls.h"

#include <absl/strings/str_cat.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>

#include "common/log.h"

namespace segments::app {
namespace {

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

absl::StatusOr<Bio> Open(const std::string& path) {
  Bio bio(BIO_new_file(path.c_str(), "r"), &BIO_free);
  if (!bio) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return bio;
}

using Certificate = std::unique_ptr<X509, decltype(&X509_free)>;

// The first certificate of a PEM file.
absl::StatusOr<Certificate> FirstCertificate(const std::string& path) {
  absl::StatusOr<Bio> bio = Open(path);
  if (!bio.ok()) return bio.status();
  Certificate cert(PEM_read_bio_X509(bio->get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return absl::InvalidArgumentError(absl::StrCat(path, " holds no PEM certificate"));
  return cert;
}

// The certificate (the first of the chain) and key must read and match.
absl::Status CheckKeyPair(const std::string& cert_file, const std::string& key_file) {
  absl::StatusOr<Certificate> cert = FirstCertificate(cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<Bio> key_bio = Open(key_file);
  if (!key_bio.ok()) return key_bio.status();
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio->get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!key) return absl::InvalidArgumentError(absl::StrCat(key_file, " holds no PEM private key"));
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(key_file, " is not the key of the certificate in ", cert_file));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(const config::Config& config) {
  if (config.tls_cert_file.empty()) {
    if (config.auth) log::Warning("serving plaintext gRPC: tokens cross the network readable (see --tls-cert-file)");
    return grpc::InsecureServerCredentials();
  }
  if (absl::Status pair = CheckKeyPair(config.tls_cert_file, config.tls_key_file); !pair.ok()) return pair;
  const bool mutual = !config.tls_client_ca_file.empty();
  if (mutual) {
    if (absl::StatusOr<Certificate> ca = FirstCertificate(config.tls_client_ca_file); !ca.ok()) return ca.status();
  }
  // gRPC's watcher reads the files again every period and uses a new pair
  // once both files agree; handshakes in between keep the old one.
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config.tls_key_file, config.tls_cert_file, config.tls_client_ca_file,
      static_cast<unsigned int>(absl::ToInt64Seconds(config.tls_reload_period)));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (mutual) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  log::Info("serving TLS with {}{}", config.tls_cert_file, mutual ? ", client certificates required (mTLS)" : "");
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace segments::app
