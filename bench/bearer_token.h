// The bench clients' token: when SEGMENTS_BENCH_TOKEN_FILE names a file (the
// bench scripts point it at a local token, .state/tokens/<role>.jwt), every
// call carries "authorization: Bearer <its contents>".
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace segments::bench {

inline const std::string& BearerToken() {
  static const std::string token = [] {
    const char* file = std::getenv("SEGMENTS_BENCH_TOKEN_FILE");
    std::string text;
    if (file == nullptr || *file == '\0') return text;
    std::ifstream in(file);
    std::getline(in, text);
    return text;
  }();
  return token;
}

inline void AddBearerToken(grpc::ClientContext& context) {
  if (!BearerToken().empty()) context.AddMetadata("authorization", "Bearer " + BearerToken());
}

}  // namespace segments::bench
