// segments-token: signing keys and bearer tokens for segments-server, for
// local setups (scripts/up.sh, compose), tests and operators:
//
//   segments-token keygen --kid=KID [--alg=ES256|RS256] --out=FILE   a private signing key (JWK), mode 0600
//   segments-token jwks FILE...                                       the JWKS of their public halves (stdout)
//   segments-token mint --key=FILE --sub=SUBJECT --role=ROLE [--role=ROLE...]
//                       --issuer=ISS [--audience=segments] [--ttl=1h] [--roles-claim=roles]
//                                                                     a signed JWT (stdout)
//   segments-token mint --hs256-secret-file=FILE ...                  the same, HS256 (development only)
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "auth/roles.h"
#include "auth/token_minter.h"

namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  segments-token keygen --kid=KID [--alg=ES256|RS256] --out=FILE\n"
    "  segments-token jwks PRIVATE_KEY_FILE...\n"
    "  segments-token mint (--key=FILE | --hs256-secret-file=FILE) --sub=SUBJECT --role=ROLE [--role=ROLE...]\n"
    "                      --issuer=ISS [--audience=segments] [--ttl=1h] [--roles-claim=roles]\n"
    "roles: service, support, analyst, admin\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "segments-token: %s\n", message.c_str());
  return 1;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  return true;
}

// --name=value flags (repeatable) and the other arguments.
struct Args {
  std::multimap<std::string, std::string> flags;
  std::vector<std::string> rest;
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto found = flags.find(name);
    return found == flags.end() ? fallback : found->second;
  }
};

Args Parse(int argc, char** argv) {
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    const auto eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      args.flags.emplace(arg.substr(2, eq - 2), arg.substr(eq + 1));
    } else {
      args.rest.push_back(arg);
    }
  }
  return args;
}

int Keygen(const Args& args) {
  const std::string out = args.Get("out");
  const std::string kid = args.Get("kid");
  if (out.empty() || kid.empty()) return Fail("keygen needs --kid and --out");
  auto key = segments::auth::GenerateSigningKey(args.Get("alg", "ES256"), kid);
  if (!key.ok()) return Fail(std::string(key.status().message()));
  const mode_t old_mask = ::umask(077);
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  ::umask(old_mask);
  file << *key << "\n";
  if (!file.flush()) return Fail("cannot write " + out);
  return 0;
}

int Jwks(const Args& args) {
  if (args.rest.empty()) return Fail("jwks needs at least one private key file");
  std::vector<std::string> keys;
  for (const std::string& path : args.rest) {
    std::string key;
    if (!ReadFile(path, &key)) return Fail("cannot read " + path);
    keys.push_back(key);
  }
  auto jwks = segments::auth::PublicJwks(keys);
  if (!jwks.ok()) return Fail(std::string(jwks.status().message()));
  std::printf("%s\n", jwks->c_str());
  return 0;
}

int Mint(const Args& args) {
  segments::auth::TokenClaims claims;
  claims.subject = args.Get("sub");
  claims.issuer = args.Get("issuer");
  claims.audience = {args.Get("audience", "segments")};
  claims.roles_claim = args.Get("roles-claim", "roles");
  if (claims.subject.empty() || claims.issuer.empty()) return Fail("mint needs --sub and --issuer");
  auto roles = args.flags.equal_range("role");
  for (auto it = roles.first; it != roles.second; ++it) {
    if (!segments::auth::RoleNamed(it->second)) return Fail("unknown role " + it->second);
    claims.roles.push_back(it->second);
  }
  if (claims.roles.empty()) return Fail("mint needs --role (service, support, analyst or admin)");
  absl::Duration ttl;
  if (!absl::ParseDuration(args.Get("ttl", "1h"), &ttl) || ttl <= absl::ZeroDuration()) {
    return Fail("--ttl must be a positive duration such as 15m, 12h or 8760h");
  }
  claims.issued_at = absl::Now();
  claims.expires = claims.issued_at + ttl;

  std::string key;
  absl::StatusOr<std::string> token;
  if (!args.Get("key").empty()) {
    if (!ReadFile(args.Get("key"), &key)) return Fail("cannot read " + args.Get("key"));
    token = segments::auth::MintToken(key, claims);
  } else if (!args.Get("hs256-secret-file").empty()) {
    if (!ReadFile(args.Get("hs256-secret-file"), &key)) return Fail("cannot read " + args.Get("hs256-secret-file"));
    token = segments::auth::MintTokenWithSecret(key, claims);
  } else {
    return Fail("mint needs --key or --hs256-secret-file");
  }
  if (!token.ok()) return Fail(std::string(token.status().message()));
  std::printf("%s\n", token->c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  const Args args = Parse(argc, argv);
  if (command == "keygen") return Keygen(args);
  if (command == "jwks") return Jwks(args);
  if (command == "mint") return Mint(args);
  std::fputs(kUsage, command == "--help" || command == "-h" ? stdout : stderr);
  return command == "--help" || command == "-h" ? 0 : 2;
}
