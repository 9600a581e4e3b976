// Helpers of the service tests of automatic assignment, bulk membership and
// listing: users made in bulk with SQL, segments with options, member sets
// read from the database, and expected sets from domain::Bucket.
#pragma once

#include <fmt/format.h>

#include <set>
#include <string>
#include <vector>

#include "domain/bucketing.h"
#include "service/service_fixture.h"

namespace segments::testing {

using UserSet = std::set<std::string>;

inline std::string Rfc3339Of(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()); }

inline UserSet Minus(const UserSet& a, const UserSet& b) {
  UserSet out;
  for (const auto& x : a) {
    if (!b.contains(x)) out.insert(x);
  }
  return out;
}

inline UserSet Intersect(const UserSet& a, const UserSet& b) {
  UserSet out;
  for (const auto& x : a) {
    if (b.contains(x)) out.insert(x);
  }
  return out;
}

class AutoFixture : public ServiceFixture {
 public:
  AutoFixture() = default;
  explicit AutoFixture(const config::Config& config, Database database = Database::kReset)
      : ServiceFixture(config, database) {}

  // `n` users made with SQL (no evaluation), ids md5(tag || g): spread over
  // the whole UUID range. Returns their ids.
  std::vector<std::string> InsertUsers(int n, const std::string& tag, const std::string& state = "active") {
    std::vector<std::string> ids;
    for (const auto& row : Query(fmt::format(
             "INSERT INTO users (id, state, created_at, updated_at) "
             "SELECT md5({} || g)::uuid, '{}', now(), now() FROM generate_series(1, {}) AS g RETURNING id::text",
             Literal(tag), state, n))) {
      ids.push_back(row[0]);
    }
    return ids;
  }

  grpc::Status CreateAuto(const std::string& slug, std::optional<double> percent,
                          const std::vector<std::string>& include = {}, const std::vector<std::string>& exclude = {},
                          std::optional<int64_t> ttl = std::nullopt, v1::CreateSegmentResponse* response = nullptr) {
    v1::CreateSegmentRequest request;
    request.set_slug(slug);
    if (percent) request.set_percent_to_fill(*percent);
    for (const auto& s : include) request.add_include_segments(s);
    for (const auto& s : exclude) request.add_exclude_segments(s);
    if (ttl) request.set_auto_seconds_to_be_in_segment(*ttl);
    v1::CreateSegmentResponse ignored;
    return segments->CreateSegment(NewContext(std::chrono::seconds(60)).get(), request,
                                   response != nullptr ? response : &ignored);
  }

  grpc::Status SetPercent(const std::string& slug, std::optional<double> percent,
                          v1::UpdateSegmentPercentResponse* response = nullptr) {
    v1::UpdateSegmentPercentRequest request;
    request.set_slug(slug);
    if (percent) request.set_percent_to_fill(*percent);
    v1::UpdateSegmentPercentResponse ignored;
    return segments->UpdateSegmentPercent(NewContext(std::chrono::seconds(60)).get(), request,
                                          response != nullptr ? response : &ignored);
  }

  grpc::Status BulkAdd(const std::string& slug, const std::vector<std::string>& ids,
                       v1::AddSegmentToUsersResponse* response = nullptr,
                       std::optional<int64_t> seconds = std::nullopt) {
    v1::AddSegmentToUsersRequest request;
    request.set_slug(slug);
    for (const auto& id : ids) request.add_user_ids(id);
    if (seconds) request.set_seconds_to_be_in_segment(*seconds);
    v1::AddSegmentToUsersResponse ignored;
    return segments->AddSegmentToUsers(NewContext(std::chrono::seconds(120)).get(), request,
                                       response != nullptr ? response : &ignored);
  }

  grpc::Status BulkRemove(const std::string& slug, const std::vector<std::string>& ids,
                          v1::RemoveSegmentFromUsersResponse* response = nullptr) {
    v1::RemoveSegmentFromUsersRequest request;
    request.set_slug(slug);
    for (const auto& id : ids) request.add_user_ids(id);
    v1::RemoveSegmentFromUsersResponse ignored;
    return segments->RemoveSegmentFromUsers(NewContext(std::chrono::seconds(120)).get(), request,
                                            response != nullptr ? response : &ignored);
  }

  // The member count GetSegment reports.
  int64_t MemberCount(const std::string& slug) {
    v1::GetSegmentRequest request;
    request.set_slug(slug);
    v1::GetSegmentResponse response;
    const grpc::Status status = segments->GetSegment(NewContext().get(), request, &response);
    INFO(Describe(status));
    REQUIRE(status.ok());
    return response.member_count();
  }

  // Sessions of the test database waiting for a lock (row or advisory).
  static int64_t LockWaiters() {
    return Count(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'");
  }

  std::string SaltOf(const std::string& slug) {
    return QueryValue("SELECT salt FROM segments WHERE deleted_at IS NULL AND slug = " + Literal(slug));
  }

  // Users with a membership of the live segment active at the fake clock's now.
  UserSet MembersOf(const std::string& slug, const std::string& condition = "true") {
    UserSet out;
    for (const auto& row : Query(fmt::format(
             "SELECT m.user_id::text FROM memberships m JOIN segments s ON s.id = m.segment_id "
             "WHERE s.deleted_at IS NULL AND s.slug = {} AND (m.expires_at IS NULL OR m.expires_at > '{}') AND {}",
             Literal(slug), Rfc3339Of(Now()), condition))) {
      out.insert(row[0]);
    }
    return out;
  }

  // Of `people`, those whose bucket for the live segment `slug` is below `hundredths`.
  UserSet Covered(const std::string& slug, const std::vector<std::string>& people, int32_t hundredths) {
    const std::string salt = SaltOf(slug);
    UserSet out;
    for (const auto& u : people) {
      if (domain::Bucket(salt, u) < hundredths) out.insert(u);
    }
    return out;
  }
};

}  // namespace segments::testing
