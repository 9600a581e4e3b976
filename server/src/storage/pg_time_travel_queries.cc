#include "storage/pg_time_travel_queries.h"

#include <fmt/format.h>

#include "common/status_macros.h"
#include "storage/pg_history_repository.h"
#include "storage/pg_params.h"
#include "storage/pg_row.h"

namespace segments::storage {
namespace {

using domain::MembershipAt;

// An instant as microseconds since the Unix epoch, as PgRow::Micros reads it.
std::string Micros(std::string_view column) { return fmt::format("(extract(epoch FROM {}) * 1000000)::int8", column); }

// Whether the last event `e` held at $2: an `add` whose deadline, if any,
// is later (the hot read's rule).
constexpr const char* kHeldAt = "e.operation = 'add' AND (e.expires_at IS NULL OR e.expires_at > $2)";

// The memberships user $1 held at $2: the user's last event per segment
// (history_user_order_idx: the user's events only).
const Statement kOfUserAt{
    "time_travel_of_user_at",
    fmt::format("SELECT e.segment_id, e.slug, e.reason, {}, {}, coalesce(e.actor, 'unknown') "
                "FROM (SELECT DISTINCT ON (segment_id) segment_id, slug, operation, reason, at, expires_at, actor "
                "FROM history WHERE user_id = $1::user_id AND at <= $2 ORDER BY segment_id, at DESC, id DESC) e "
                "WHERE {} ORDER BY e.segment_id",
                Micros("e.at"), Micros("e.expires_at"), kHeldAt)};

// Up to $4 members of segment $1 at $2 after user $3 ('' for the first),
// by user id: the last event per user, the row whose next one (lead) is
// another user's, in the order of history_segment_member_idx (segment_id,
// user_id, at, id). Nothing is sorted, so a page reads its users' events
// and stops (DISTINCT ON needed a sort by at descending, which sorted every
// event of a 1M-member segment once the plan was generic; bench/README.md,
// "Time travel"). The actor comes from the row itself.
const Statement kMembersAt{
    "time_travel_members_at",
    fmt::format("SELECT e.user_id, e.reason, {}, {}, coalesce(h.actor, 'unknown') "
                "FROM (SELECT user_id, id, operation, reason, at, expires_at, "
                "lead(user_id) OVER (ORDER BY user_id, at, id) AS next_user FROM history "
                "WHERE segment_id = $1 AND user_id > $3::text COLLATE \"C\" AND at <= $2 "
                "ORDER BY user_id, at, id) e "
                "JOIN history h ON h.id = e.id WHERE e.next_user IS DISTINCT FROM e.user_id AND {} "
                "ORDER BY e.user_id LIMIT $4",
                Micros("e.at"), Micros("e.expires_at"), kHeldAt),
    /*plan_per_call=*/true};

// Members of segment $1 at $2: every `add` at or before $2 less every
// `remove` (the history alternates per user and segment), less the
// memberships past their deadline at $2 whose `remove` is not written yet.
// (This and the next are planned per call: segments range from a few
// events to millions.)
const Statement kCountAt{
    "time_travel_count_at",
    "SELECT (SELECT count(*) FILTER (WHERE operation = 'add') - count(*) FILTER (WHERE operation = 'remove') "
    "FROM history WHERE segment_id = $1 AND at <= $2) "
    "- (SELECT count(*) FROM memberships WHERE segment_id = $1 AND expires_at <= $2 AND added_at <= $2)",
    /*plan_per_call=*/true};

// Events of segments $1 before $3, by step of $4 seconds from the epoch
// (NULL: before $2, what the size at $2 sums), with the TTL ends not written
// yet (deadlines up to $5) counted as the `remove`s the expiry job will
// write at them. Counted per step first, so that only the few groups are
// turned into microseconds, not every event.
const Statement kSizeEvents{
    "time_travel_size_events",
    "WITH e AS (SELECT CASE WHEN at < $2 THEN NULL ELSE date_bin(make_interval(secs => $4::int8), at, "
    "timestamptz '1970-01-01 00:00:00+00') END AS step, operation, reason "
    "FROM history WHERE segment_id = ANY($1::int8[]) AND at < $3 "
    "UNION ALL SELECT CASE WHEN expires_at < $2 THEN NULL ELSE date_bin(make_interval(secs => $4::int8), "
    "expires_at, timestamptz '1970-01-01 00:00:00+00') END, 'remove', 'ttl' "
    "FROM memberships WHERE segment_id = ANY($1::int8[]) AND expires_at <= $5 AND expires_at < $3), "
    "g AS (SELECT step, operation, reason, count(*) AS n FROM e GROUP BY 1, 2, 3) "
    "SELECT " +
        Micros("step") + ", operation, reason, n FROM g ORDER BY 1 NULLS FIRST",
    /*plan_per_call=*/true};

const Statement kSegmentsOfSlug{"time_travel_segments_of_slug",
                                fmt::format("SELECT id, {}, {} FROM segments WHERE slug = $1 ORDER BY id",
                                            Micros("created_at"), Micros("deleted_at"))};

const Statement kFactsOf{"time_travel_facts_of",
                         fmt::format("SELECT (SELECT state FROM users WHERE id = $1::user_id), o.reason, {} "
                                     "FROM (VALUES (1)) AS one LEFT JOIN auto_opt_outs o "
                                     "ON o.user_id = $1::user_id AND o.segment_id = $2",
                                     Micros("o.at"))};

const Statement kLastEventAt{
    "time_travel_last_event_at",
    fmt::format("SELECT user_id, segment_id, slug, operation, reason, {}, id, coalesce(actor, 'unknown'), {} "
                "FROM history WHERE user_id = $1::user_id AND segment_id = $2 AND at <= $3 "
                "ORDER BY at DESC, id DESC LIMIT 1",
                Micros("at"), Micros("expires_at"))};

}  // namespace

const std::string& MembersAtSql() { return kMembersAt.sql; }
const std::string& SizeEventsSql() { return kSizeEvents.sql; }

absl::StatusOr<std::vector<MembershipAt>> PgTimeTravelQueries::OfUserAt(const domain::UserId& user, absl::Time at) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<MembershipAt>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kOfUserAt, PgParams().User(user).Time(at)));
    std::vector<MembershipAt> out;
    for (int i = 0; i < r.Rows(); ++i) {
      const PgRow row(r, i);
      MembershipAt m{user};
      ASSIGN_OR_RETURN(m.segment_id, row.Int64(0));
      ASSIGN_OR_RETURN(m.slug, row.Text(1));
      ASSIGN_OR_RETURN(m.reason, row.Enum(2, &domain::ParseReason));
      ASSIGN_OR_RETURN(m.added_at, row.Micros(3));
      ASSIGN_OR_RETURN(m.expires_at, row.OptionalMicros(4));
      ASSIGN_OR_RETURN(m.actor, row.Text(5));
      out.push_back(std::move(m));
    }
    return out;
  });
}

absl::StatusOr<std::vector<MembershipAt>> PgTimeTravelQueries::MembersAt(
    domain::SegmentId segment, absl::Time at, const std::optional<domain::UserId>& after_user, int limit) {
  PgParams params;
  params.Int(segment).Time(at).Text(after_user ? after_user->ToString() : "").Int(limit);
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<MembershipAt>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kMembersAt, params));
    std::vector<MembershipAt> out;
    out.reserve(static_cast<size_t>(r.Rows()));
    for (int i = 0; i < r.Rows(); ++i) {
      const PgRow row(r, i);
      ASSIGN_OR_RETURN(domain::UserId user, row.User(0));
      MembershipAt m{user};
      m.segment_id = segment;
      ASSIGN_OR_RETURN(m.reason, row.Enum(1, &domain::ParseReason));
      ASSIGN_OR_RETURN(m.added_at, row.Micros(2));
      ASSIGN_OR_RETURN(m.expires_at, row.OptionalMicros(3));
      ASSIGN_OR_RETURN(m.actor, row.Text(4));
      out.push_back(std::move(m));
    }
    return out;
  });
}

absl::StatusOr<int64_t> PgTimeTravelQueries::CountAt(domain::SegmentId segment, absl::Time at) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kCountAt, PgParams().Int(segment).Time(at)));
    return PgRow(r, 0).Int64(0);
  });
}

absl::StatusOr<domain::SizeEvents> PgTimeTravelQueries::SizeEventsOf(const std::vector<domain::SegmentId>& segments,
                                                                     absl::Time from, absl::Time to,
                                                                     absl::Duration step, absl::Time now) {
  PgParams params;
  params.IntArray(segments).Time(from).Time(to).Int(absl::ToInt64Seconds(step)).Time(now);
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<domain::SizeEvents> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kSizeEvents, params));
    domain::SizeEvents out;
    for (int i = 0; i < r.Rows(); ++i) {
      const PgRow row(r, i);
      ASSIGN_OR_RETURN(std::optional<absl::Time> start, row.OptionalMicros(0));
      ASSIGN_OR_RETURN(domain::Operation operation, row.Enum(1, &domain::ParseOperation));
      ASSIGN_OR_RETURN(domain::Reason reason, row.Enum(2, &domain::ParseReason));
      ASSIGN_OR_RETURN(int64_t count, row.Int64(3));
      const bool add = operation == domain::Operation::kAdd;
      if (!start) {
        out.members_at_from += add ? count : -count;
        continue;
      }
      if (out.steps.empty() || out.steps.back().first != *start) out.steps.emplace_back(*start, domain::EventCounts{});
      auto& counts = add ? out.steps.back().second.added : out.steps.back().second.removed;
      counts[static_cast<size_t>(reason)] += count;
    }
    return out;
  });
}

absl::StatusOr<std::vector<domain::TimeTravelQueries::SegmentLife>> PgTimeTravelQueries::SegmentsOfSlug(
    const std::string& slug) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<SegmentLife>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kSegmentsOfSlug, PgParams().Text(slug)));
    std::vector<SegmentLife> out;
    for (int i = 0; i < r.Rows(); ++i) {
      const PgRow row(r, i);
      SegmentLife life;
      ASSIGN_OR_RETURN(life.id, row.Int64(0));
      ASSIGN_OR_RETURN(life.created_at, row.Micros(1));
      ASSIGN_OR_RETURN(life.deleted_at, row.OptionalMicros(2));
      out.push_back(life);
    }
    return out;
  });
}

absl::StatusOr<domain::UserFacts> PgTimeTravelQueries::FactsOf(const domain::UserId& user, domain::SegmentId segment) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<domain::UserFacts> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kFactsOf, PgParams().User(user).Int(segment)));
    const PgRow row(r, 0);
    domain::UserFacts facts;
    if (!row.IsNull(0)) {
      ASSIGN_OR_RETURN(facts.state, row.Enum(0, &domain::ParseUserState));
    }
    if (!row.IsNull(1)) {
      ASSIGN_OR_RETURN(facts.opted_out, row.Enum(1, &domain::ParseReason));
    }
    ASSIGN_OR_RETURN(facts.opted_out_at, row.OptionalMicros(2));
    return facts;
  });
}

absl::StatusOr<std::optional<domain::HistoryEvent>> PgTimeTravelQueries::LastEventAt(const domain::UserId& user,
                                                                                     domain::SegmentId segment,
                                                                                     absl::Time at) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::optional<domain::HistoryEvent>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kLastEventAt, PgParams().User(user).Int(segment).Time(at)));
    if (r.Rows() == 0) return std::nullopt;
    ASSIGN_OR_RETURN(domain::HistoryEvent e, HistoryEventAt(r, 0));
    ASSIGN_OR_RETURN(e.expires_at, PgRow(r, 0).OptionalMicros(8));
    return e;
  });
}

}  // namespace segments::storage
