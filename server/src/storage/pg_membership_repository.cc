#include "storage/pg_membership_repository.h"

#include <absl/strings/str_cat.h>
#include <fmt/format.h>

#include "common/status_macros.h"
#include "storage/pg_row.h"

namespace segments::storage {
namespace {

using domain::Membership;
using domain::NewMembership;
using domain::Reason;
using domain::Segment;
using domain::SegmentId;
using domain::SegmentTask;
using domain::SegmentTaskKind;
using domain::UserId;
using domain::UserRange;

// Conventions of the statements below. A membership already expired at
// `now` ended at its deadline, by TTL: its history event says so (reason
// ttl, stamped with the deadline), counts of memberships ended "now" leave
// it out, and an automatic one ended by TTL opts its user out for good.

const Statement kLockAutoShared{"lock_auto_shared",
                                "SELECT pg_advisory_xact_lock_shared(hashtext('segments.auto_assignment'))"};
const Statement kLockAutoExclusive{"lock_auto_exclusive",
                                   "SELECT pg_advisory_xact_lock(hashtext('segments.auto_assignment'))"};

// --- one user
// A hand change in one call (db/schema.sql, migrations 7 and 14): $1 user,
// $2 slugs to add, $3 their deadlines, $4 slugs to remove, $5 now, $6 the
// actor its history records (NULL: the system).
const Statement kChangeUserSegments{"change_user_segments",
                                    "SELECT problem, item FROM change_user_segments_as($6, $1::user_id, $2::text[], "
                                    "$3::timestamptz[], $4::text[], $5)"};

// A range of users (domain::UserRange) as the condition {column} > $N AND
// {column} <= coalesce($N+1, {column}), ids compared in byte order.
std::string InRange(std::string_view column, int after) {
  return fmt::format("{0} > ${1}::text COLLATE \"C\" AND {0} <= coalesce(${2}::text COLLATE \"C\", {0})", column, after,
                     after + 1);
}

// --- set-based ends
// $1 segment id, $2 slug, $3 reason, $4 now, $5 and $6 the range of users.
const Statement kEndSegmentMemberships{
    "end_segment_memberships",
    "WITH e AS (DELETE FROM memberships WHERE segment_id = $1 AND " + InRange("user_id", 5) +
        " RETURNING user_id, expires_at), "
        "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
        "SELECT e.user_id, $1, $2, 'remove', CASE WHEN e.expires_at <= $4 THEN 'ttl' ELSE $3::history_reason END, "
        "CASE WHEN e.expires_at <= $4 THEN e.expires_at ELSE $4::timestamptz END FROM e RETURNING reason) "
        "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h"};
// $1 user, $2 reason, $3 now.
const Statement kEndUserMemberships{
    "end_user_memberships",
    "WITH e AS (DELETE FROM memberships WHERE user_id = $1::user_id RETURNING segment_id, expires_at), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT $1::user_id, e.segment_id, s.slug, 'remove', "
    "CASE WHEN e.expires_at <= $3 THEN 'ttl' ELSE $2::history_reason END, "
    "CASE WHEN e.expires_at <= $3 THEN e.expires_at ELSE $3::timestamptz END "
    "FROM e JOIN segments s ON s.id = e.segment_id RETURNING reason) "
    "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h"};

// --- bulk membership of one segment: $1 segment id, $2 user ids, $3 slug, $4 now.
// Expired rows of the users that no job has removed yet, which would stand
// in the way of new ones.
const Statement kEndExpiredMembersOf{
    "end_expired_members_of",
    "WITH e AS (DELETE FROM memberships WHERE segment_id = $1 AND user_id = ANY($2::user_id[]) AND expires_at <= $4 "
    "RETURNING user_id, expires_at, auto), "
    "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT $1, e.user_id, 'ttl', $4 FROM e "
    "WHERE e.auto AND e.expires_at <= $4 ON CONFLICT DO NOTHING), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $3, 'remove', 'ttl', e.expires_at FROM e RETURNING 1) SELECT count(*) FROM h"};
// $5 the deadline or NULL. ON CONFLICT: a user's own change may add the
// same membership meanwhile; then it stays as that change made it.
const Statement kAddMembers{"add_members",
                            "WITH m AS (INSERT INTO memberships (user_id, segment_id, added_at, expires_at) "
                            "SELECT id, $1, $4, $5 FROM unnest($2::user_id[]) AS i(id) ORDER BY id "
                            "ON CONFLICT (user_id, segment_id) DO NOTHING RETURNING user_id), "
                            "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at) "
                            "SELECT user_id, $1, $3, 'add', 'manual', $4, $5 FROM m RETURNING 1) "
                            "SELECT count(*) FROM h"};
// A hand removal opts the user out; an automatic row that had expired
// already is a TTL end and opts out as such.
const Statement kRemoveMembers{
    "remove_members",
    "WITH e AS (DELETE FROM memberships WHERE segment_id = $1 AND user_id = ANY($2::user_id[]) "
    "RETURNING user_id, expires_at, auto), "
    "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) "
    "SELECT $1, e.user_id, CASE WHEN e.expires_at <= $4 THEN 'ttl' ELSE 'manual' END::history_reason, $4 FROM e "
    "WHERE e.auto OR e.expires_at IS NULL OR e.expires_at > $4 ON CONFLICT DO NOTHING), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $3, 'remove', CASE WHEN e.expires_at <= $4 THEN 'ttl' ELSE 'manual'::history_reason END, "
    "CASE WHEN e.expires_at <= $4 THEN e.expires_at ELSE $4::timestamptz END FROM e RETURNING reason) "
    "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h"};

// --- automatic assignment of a chunk of users (a segment task's chunk, or
// every user for UserRange{}). Each statement picks the users of buckets
// [$from, $to) of salt $salt among its candidates, in the range of ids
// ($after, $last]: the digest is computed once per user (the OFFSET 0 fence
// keeps the planner from inlining it into every use). Every bound is a
// parameter planned with its value (plan_per_call), so each scan reads the
// chunk's range of its index and no more, however large the table
// (bench/README.md). No statement joins a table to the picked users: a
// segment created or filled moments ago has no statistics yet, and with
// "about one row" the planner would rescan the picked users (their digests
// included) once per row of the other side; the users picked are either
// filtered in the one scan, or gathered once into an array.
std::string Picked(std::string_view candidates, int salt) {
  return fmt::format(
      "picked AS (SELECT id FROM (SELECT id, segment_digest(${0}::text, id) AS digest FROM ({1}) AS c OFFSET 0) AS u "
      "WHERE segment_bucket_of_digest(digest) >= ${2}::int AND segment_bucket_of_digest(digest) < ${3}::int)",
      salt, candidates, salt + 1, salt + 2);
}
// The active users of the range.
std::string ActiveUsers(int after) { return "SELECT id FROM users WHERE state = 'active' AND " + InRange("id", after); }

// First, expired rows of picked users that no job has removed yet end: they
// would stand in the way, and an expired automatic one opts its user out
// before the assignment below looks. Only the segment's expired rows in the
// range are bucketed (a few, if any), not every user of the range. $1
// segment id, $2 slug, $3 now, $4 salt, $5 and $6 the buckets, $7 and $8 the
// range of users.
const Statement kEndExpiredPicked{
    "end_expired_picked",
    "WITH e AS (DELETE FROM memberships m WHERE m.segment_id = $1 AND " + InRange("m.user_id", 7) +
        " AND m.expires_at <= $3 "
        "AND int4range($5::int, $6::int) @> segment_bucket($4::text, m.user_id) "
        "AND EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id AND u.state = 'active') "
        "RETURNING m.user_id, m.expires_at, m.auto), "
        "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT $1, e.user_id, 'ttl', $3 FROM e "
        "WHERE e.auto AND e.expires_at <= $3 ON CONFLICT DO NOTHING), "
        "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
        "SELECT e.user_id, $1, $2, 'remove', 'ttl', e.expires_at FROM e RETURNING 1) SELECT count(*) FROM h",
    /*plan_per_call=*/true};
// Then the picked users who pass the options ($4 include ids, $5 exclude
// ids, memberships active at $3) and have not opted out become automatic
// members expiring at $6 (NULL: never): $1 segment id, $2 slug, $3 now, $7
// salt, $8 and $9 the buckets, $10 and $11 the range. Hand changes of the
// segment wait for the chunk (it holds the segment exclusively). The users
// about to become members are locked FOR KEY SHARE, in id order, and
// checked again once locked: a user's deletion (which locks the row FOR
// UPDATE, then ends the user's memberships) waits for the chunk, or the
// chunk for it and then skips the user, so no membership outlives its user.
// Nothing else waits: creating, excluding or bringing back a user, and hand
// changes of other segments, go on beside the chunk (docs/writes.md). A user
// evaluated on their own meanwhile (created or back), or a member by hand,
// is skipped by ON CONFLICT, and only rows this statement inserted get an
// `add`.
const Statement kAssignPicked{
    "assign_picked",
    "WITH " + Picked(ActiveUsers(10), 7) +
        ", eligible AS (SELECT p.id FROM picked p "
        "WHERE NOT EXISTS (SELECT 1 FROM auto_opt_outs o WHERE o.segment_id = $1 AND o.user_id = p.id) "
        "AND (cardinality($4::int8[]) = 0 OR (SELECT count(*) FROM memberships x WHERE x.user_id = p.id "
        "AND x.segment_id = ANY($4::int8[]) AND (x.expires_at IS NULL OR x.expires_at > $3)) = "
        "cardinality($4::int8[])) "
        "AND (cardinality($5::int8[]) = 0 OR NOT EXISTS (SELECT 1 FROM memberships x WHERE x.user_id = p.id "
        "AND x.segment_id = ANY($5::int8[]) AND (x.expires_at IS NULL OR x.expires_at > $3)))), "
        "locked AS (SELECT u.id FROM users u WHERE u.id = ANY(ARRAY(SELECT id FROM eligible)) "
        "AND u.state = 'active' ORDER BY u.id FOR KEY SHARE), "
        "m AS (INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) "
        "SELECT id, $1, $3, $6, true FROM locked ORDER BY id ON CONFLICT DO NOTHING RETURNING user_id), "
        "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at) "
        "SELECT user_id, $1, $2, 'add', 'auto_percent', $3, $6 FROM m RETURNING 1) "
        "SELECT count(*) FROM h",
    /*plan_per_call=*/true};
// Or the automatic members of the range in buckets [$5, $6) leave: $1 segment id, $2 slug, $3 now, $4
// salt, $5 and $6 the buckets, $7 and $8 the range. Whoever else ends one
// of these rows meanwhile (the expiry job, the user's deletion) writes its
// history; the statement that deletes a row writes it.
const Statement kUnassignPicked{
    "unassign_picked",
    "WITH e AS (DELETE FROM memberships m WHERE m.segment_id = $1 AND m.auto AND " + InRange("m.user_id", 7) +
        " AND int4range($5::int, $6::int) @> segment_bucket($4::text, m.user_id) "
        "RETURNING m.user_id, m.expires_at, m.auto), "
        "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT $1, e.user_id, 'ttl', $3 FROM e "
        "WHERE e.auto AND e.expires_at <= $3 ON CONFLICT DO NOTHING), "
        "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
        "SELECT e.user_id, $1, $2, 'remove', CASE WHEN e.expires_at <= $3 THEN 'ttl' ELSE "
        "'auto_percent'::history_reason "
        "END, CASE WHEN e.expires_at <= $3 THEN e.expires_at ELSE $3::timestamptz END FROM e RETURNING reason) "
        "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h",
    /*plan_per_call=*/true};

// --- The earliest deadline held (memberships_expiry_idx answers it).
const Statement kEarliestDeadline{
    "earliest_deadline",
    "SELECT (extract(epoch FROM min(expires_at)) * 1000000)::int8 FROM memberships WHERE expires_at IS NOT NULL"};

// --- TTL expiry, one batch: $1 now, $2 batch size. SKIP LOCKED leaves rows
// that another job or a user's update holds to them; that transaction ends
// them or the next pass does.
const Statement kEndExpiredMemberships{
    "end_expired_memberships",
    "WITH due AS (SELECT user_id, segment_id FROM memberships WHERE expires_at <= $1 "
    "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "e AS (DELETE FROM memberships m USING due WHERE m.user_id = due.user_id AND m.segment_id = due.segment_id "
    "RETURNING m.user_id, m.segment_id, m.expires_at, m.auto), "
    "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT e.segment_id, e.user_id, 'ttl', $1 "
    "FROM e WHERE e.auto AND e.expires_at <= $1 ON CONFLICT DO NOTHING), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, e.segment_id, s.slug, 'remove', 'ttl', e.expires_at FROM e "
    "JOIN segments s ON s.id = e.segment_id RETURNING 1) SELECT count(*) FROM h"};

// --- the users a segment task looks at: the last of them, and the end of
// the next chunk ($1 after this id, $2 up to this one, $3 at most this many
// ids); $4 (or $1 for the last) the segment, for members.
const Statement kLastUser{"last_user", "SELECT max(id) FROM users"};
const Statement kLastAutomaticMember{"last_automatic_member",
                                     "SELECT max(user_id) FROM memberships WHERE segment_id = $1 AND auto"};
const Statement kLastMember{"last_member", "SELECT max(user_id) FROM memberships WHERE segment_id = $1"};
std::string ChunkEndOf(std::string_view ids) {
  return fmt::format(
      "SELECT max(id) FROM (SELECT id FROM ({}) AS c WHERE id > $1::text COLLATE \"C\" "
      "AND id <= $2::text COLLATE \"C\" ORDER BY id LIMIT $3) AS chunk",
      ids);
}
const Statement kUsersChunkEnd{"users_chunk_end", ChunkEndOf("SELECT id FROM users")};
const Statement kAutomaticMembersChunkEnd{
    "automatic_members_chunk_end", ChunkEndOf("SELECT user_id AS id FROM memberships WHERE segment_id = $4 AND auto")};
const Statement kMembersChunkEnd{"members_chunk_end",
                                 ChunkEndOf("SELECT user_id AS id FROM memberships WHERE segment_id = $4")};

// The statement of `kind` among (assign, unassign, delete).
const Statement& ByTaskKind(SegmentTaskKind kind, const Statement& assign, const Statement& unassign,
                            const Statement& remove) {
  if (kind == SegmentTaskKind::kUnassign) return unassign;
  return kind == SegmentTaskKind::kDelete ? remove : assign;
}

// --- many users at once (batches of user events), over arrays of users;
// those that look rows up are planned per call (Statement::plan_per_call).
// $1 users: their memberships, then the user. Rows are locked so a
// concurrent expiry job skips them rather than racing.
const Statement kUsersMemberships{
    "users_memberships",
    "SELECT m.segment_id, s.slug, (extract(epoch FROM m.added_at) * 1000000)::int8 AS added_at, "
    "(extract(epoch FROM m.expires_at) * 1000000)::int8 AS expires_at, m.auto, m.user_id "
    "FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.user_id = ANY($1::user_id[]) "
    "ORDER BY m.user_id, m.segment_id FOR UPDATE OF m",
    /*plan_per_call=*/true};
const Statement kUsersOptedOutSegments{
    "users_opted_out_segments", "SELECT user_id, segment_id FROM auto_opt_outs WHERE user_id = ANY($1::user_id[])",
    /*plan_per_call=*/true};
// $1 users, $2 segments, $3 now, $4 deadlines, $5 automatic (parallel arrays).
const Statement kInsertMemberships{"insert_memberships",
                                   "INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) "
                                   "SELECT user_id, segment_id, $3, expires_at, auto "
                                   "FROM unnest($1::user_id[], $2::int8[], $4::timestamptz[], $5::bool[]) "
                                   "AS t(user_id, segment_id, expires_at, auto)"};
// $1 users, $2 segments (parallel).
const Statement kDeleteUsersMemberships{"delete_users_memberships",
                                        "DELETE FROM memberships m "
                                        "USING unnest($1::user_id[], $2::int8[]) AS t(user_id, segment_id) "
                                        "WHERE m.user_id = t.user_id AND m.segment_id = t.segment_id",
                                        /*plan_per_call=*/true};
// $1 users, $2 segments, $3 reasons (parallel), $4 now.
const Statement kRecordUsersOptOuts{
    "record_users_opt_outs",
    "INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT segment_id, user_id, reason, $4::timestamptz "
    "FROM unnest($1::user_id[], $2::int8[], $3::history_reason[]) AS t(user_id, segment_id, reason) "
    "ON CONFLICT DO NOTHING"};
// kEndUserMemberships for users $1: $2 reason, $3 now.
const Statement kEndUsersMemberships{
    "end_users_memberships",
    "WITH e AS (DELETE FROM memberships WHERE user_id = ANY($1::user_id[]) RETURNING user_id, segment_id, expires_at), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, e.segment_id, s.slug, 'remove', "
    "CASE WHEN e.expires_at <= $3 THEN 'ttl' ELSE $2::history_reason END, "
    "CASE WHEN e.expires_at <= $3 THEN e.expires_at ELSE $3::timestamptz END "
    "FROM e JOIN segments s ON s.id = e.segment_id RETURNING reason) "
    "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h",
    /*plan_per_call=*/true};

// --- reads
const Statement kActiveSegmentSlugs{"active_segment_slugs",
                                    "SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id "
                                    "WHERE m.user_id = $1::user_id AND (m.expires_at IS NULL OR m.expires_at > $2) "
                                    "AND s.deleted_at IS NULL"};
// Members of segment $1 active at $2, by user id, at most $3; the next page
// continues after user $4.
const Statement kFirstMembers{"first_members",
                              "SELECT user_id, (extract(epoch FROM added_at) * 1000000)::int8 AS added_at, "
                              "(extract(epoch FROM expires_at) * 1000000)::int8 AS expires_at, auto FROM memberships "
                              "WHERE segment_id = $1 AND (expires_at IS NULL OR expires_at > $2) "
                              "ORDER BY user_id LIMIT $3"};
const Statement kNextMembers{"next_members",
                             "SELECT user_id, (extract(epoch FROM added_at) * 1000000)::int8 AS added_at, "
                             "(extract(epoch FROM expires_at) * 1000000)::int8 AS expires_at, auto FROM memberships "
                             "WHERE segment_id = $1 AND (expires_at IS NULL OR expires_at > $2) "
                             "AND user_id > $4::user_id ORDER BY user_id LIMIT $3"};

// The one value of a one-row result, NULL as nullopt.
absl::StatusOr<std::optional<std::string>> OptionalTextAt(const PgResult& r) {
  const PgRow row(r, 0);
  if (row.IsNull(0)) return std::nullopt;
  ASSIGN_OR_RETURN(std::string value, row.Text(0));
  return value;
}

// A row of kUsersMemberships.
absl::StatusOr<Membership> MembershipAt(const PgRow& row) {
  Membership m;
  ASSIGN_OR_RETURN(m.segment_id, row.Int64(0));
  ASSIGN_OR_RETURN(m.slug, row.Text(1));
  ASSIGN_OR_RETURN(m.added_at, row.Micros(2));
  ASSIGN_OR_RETURN(m.expires_at, row.OptionalMicros(3));
  ASSIGN_OR_RETURN(m.automatic, row.Bool(4));
  return m;
}

// The first parameters of the bulk statements: $1 segment id, $2 users, $3 slug, $4 now.
PgParams BulkParams(const Segment& segment, const std::vector<UserId>& users, absl::Time now) {
  PgParams params;
  params.Int(segment.id).Users(users).Text(segment.slug).Time(now);
  return params;
}

}  // namespace

absl::Status PgMembershipRepository::LockAutoAssignment(domain::AutoAssignmentLock mode) {
  return tx_.conn()
      .Execute(mode == domain::AutoAssignmentLock::kShared ? kLockAutoShared : kLockAutoExclusive)
      .status();
}

absl::StatusOr<domain::UserSegmentsProblems> PgMembershipRepository::ChangeUserSegments(
    const domain::UserSegmentsChange& change) {
  std::vector<std::string> add_slugs;
  std::vector<std::optional<absl::Time>> deadlines;
  for (const auto& add : change.adds) {
    add_slugs.push_back(add.slug);
    deadlines.push_back(add.expires_at);
  }
  PgParams params;
  params.User(change.user).TextArray(add_slugs).OptionalTimeArray(deadlines).TextArray(change.removes).Time(change.now);
  params.Actor();
  tx_.NoteReadModelChange();
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kChangeUserSegments, params));
  domain::UserSegmentsProblems problems;
  for (int i = 0; i < r.Rows(); ++i) {
    const PgRow row(r, i);
    ASSIGN_OR_RETURN(const std::string problem, row.Text(0));
    if (problem == "no_user") {
      problems.no_user = true;
      continue;
    }
    ASSIGN_OR_RETURN(const int32_t item, row.Int32(1));
    const auto position = static_cast<size_t>(item);
    if (problem == "missing_add") {
      problems.missing_adds.push_back(position);
    } else if (problem == "missing_remove") {
      problems.missing_removes.push_back(position);
    } else if (problem == "already_in") {
      problems.already_in.push_back(position);
    } else {
      return absl::InternalError(absl::StrCat("change_user_segments: unknown problem ", problem));
    }
  }
  return problems;
}

absl::Status PgMembershipRepository::Insert(const std::vector<std::pair<UserId, NewMembership>>& rows, absl::Time now) {
  if (rows.empty()) return absl::OkStatus();
  std::vector<UserId> users;
  std::vector<int64_t> segments;
  std::vector<std::optional<absl::Time>> deadlines;
  std::vector<bool> automatic;
  for (const auto& [user, m] : rows) {
    users.push_back(user);
    segments.push_back(m.segment_id);
    deadlines.push_back(m.expires_at);
    automatic.push_back(m.automatic);
  }
  PgParams params;
  params.Users(users).IntArray(segments).Time(now).OptionalTimeArray(deadlines).BoolArray(automatic);
  tx_.NoteReadModelChange();
  return tx_.conn().Execute(kInsertMemberships, params).status();
}

absl::StatusOr<int64_t> PgMembershipRepository::EndAllOfSegment(const Segment& segment, const UserRange& users,
                                                                Reason reason, absl::Time now) {
  tx_.NoteReadModelChange();
  RETURN_IF_ERROR(tx_.PrepareSetBased());
  PgParams params;
  params.Int(segment.id)
      .Text(segment.slug)
      .Text(domain::ToString(reason))
      .Time(now)
      .Text(users.after)
      .OptionalText(users.last);
  return tx_.CountOf(kEndSegmentMemberships, params);
}

absl::StatusOr<int64_t> PgMembershipRepository::EndAllOfUser(const UserId& user, Reason reason, absl::Time now) {
  tx_.NoteReadModelChange();
  return tx_.CountOf(kEndUserMemberships, PgParams().User(user).Text(domain::ToString(reason)).Time(now));
}

absl::StatusOr<int64_t> PgMembershipRepository::AddMembers(const Segment& segment, const std::vector<UserId>& users,
                                                           std::optional<absl::Time> expires_at, absl::Time now) {
  tx_.NoteReadModelChange();
  RETURN_IF_ERROR(tx_.PrepareSetBased());
  RETURN_IF_ERROR(tx_.CountOf(kEndExpiredMembersOf, BulkParams(segment, users, now)));
  return tx_.CountOf(kAddMembers, BulkParams(segment, users, now).OptionalTime(expires_at));
}

absl::StatusOr<int64_t> PgMembershipRepository::RemoveMembers(const Segment& segment, const std::vector<UserId>& users,
                                                              absl::Time now) {
  tx_.NoteReadModelChange();
  RETURN_IF_ERROR(tx_.PrepareSetBased());
  return tx_.CountOf(kRemoveMembers, BulkParams(segment, users, now));
}

absl::StatusOr<int64_t> PgMembershipRepository::AssignByPercent(const Segment& segment, const UserRange& users,
                                                                int32_t from_hundredths, absl::Time now) {
  tx_.NoteReadModelChange();
  RETURN_IF_ERROR(tx_.PrepareSetBased());
  auto picking = [&](PgParams& params) -> PgParams& {
    return params.Text(segment.salt)
        .Int(from_hundredths)
        .Int(segment.percent_hundredths)
        .Text(users.after)
        .OptionalText(users.last);
  };
  PgParams expired;
  expired.Int(segment.id).Text(segment.slug).Time(now);
  RETURN_IF_ERROR(tx_.CountOf(kEndExpiredPicked, picking(expired)).status());
  std::optional<absl::Time> expires_at;
  if (segment.auto_options.ttl_seconds) expires_at = now + absl::Seconds(*segment.auto_options.ttl_seconds);
  PgParams params;
  params.Int(segment.id)
      .Text(segment.slug)
      .Time(now)
      .IntArray(segment.auto_options.include_ids)
      .IntArray(segment.auto_options.exclude_ids)
      .OptionalTime(expires_at);
  return tx_.CountOf(kAssignPicked, picking(params));
}

absl::StatusOr<int64_t> PgMembershipRepository::UnassignByPercent(const Segment& segment, const UserRange& users,
                                                                  int32_t from_hundredths, absl::Time now) {
  tx_.NoteReadModelChange();
  RETURN_IF_ERROR(tx_.PrepareSetBased());
  PgParams params;
  params.Int(segment.id)
      .Text(segment.slug)
      .Time(now)
      .Text(segment.salt)
      .Int(segment.percent_hundredths)
      .Int(from_hundredths)
      .Text(users.after)
      .OptionalText(users.last);
  return tx_.CountOf(kUnassignPicked, params);
}

absl::StatusOr<std::optional<std::string>> PgMembershipRepository::LastTaskUser(const SegmentTask& task) {
  const Statement& statement = ByTaskKind(task.kind, kLastUser, kLastAutomaticMember, kLastMember);
  PgParams params;
  if (task.kind != SegmentTaskKind::kAssign) params.Int(task.segment_id);
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(statement, params));
  return OptionalTextAt(r);
}

absl::StatusOr<std::optional<std::string>> PgMembershipRepository::ChunkEnd(const SegmentTask& task, int size) {
  if (!task.last_user) return std::nullopt;
  const Statement& statement = ByTaskKind(task.kind, kUsersChunkEnd, kAutomaticMembersChunkEnd, kMembersChunkEnd);
  PgParams params;
  params.Text(task.after_user).Text(*task.last_user).Int(size);
  if (task.kind != SegmentTaskKind::kAssign) params.Int(task.segment_id);
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(statement, params));
  return OptionalTextAt(r);
}

// Not a read model change: reads leave out expired memberships already.
absl::StatusOr<int64_t> PgMembershipRepository::EndExpired(absl::Time now, int limit) {
  return tx_.CountOf(kEndExpiredMemberships, PgParams().Time(now).Int(limit));
}

absl::StatusOr<std::optional<absl::Time>> PgMembershipRepository::EarliestDeadline() {
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kEarliestDeadline, PgParams()));
  return PgRow(r, 0).OptionalMicros(0);
}

absl::StatusOr<absl::flat_hash_map<UserId, std::vector<Membership>>> PgMembershipRepository::OfUsers(
    const std::vector<UserId>& users) {
  absl::flat_hash_map<UserId, std::vector<Membership>> out;
  if (users.empty()) return out;
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kUsersMemberships, PgParams().Users(users)));
  for (int i = 0; i < r.Rows(); ++i) {
    const PgRow row(r, i);
    ASSIGN_OR_RETURN(UserId user, row.User(5));
    ASSIGN_OR_RETURN(Membership m, MembershipAt(row));
    out[user].push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<absl::flat_hash_map<UserId, std::vector<SegmentId>>> PgMembershipRepository::OptedOutSegmentsOfUsers(
    const std::vector<UserId>& users) {
  absl::flat_hash_map<UserId, std::vector<SegmentId>> out;
  if (users.empty()) return out;
  ASSIGN_OR_RETURN(PgResult r, tx_.conn().Execute(kUsersOptedOutSegments, PgParams().Users(users)));
  for (int i = 0; i < r.Rows(); ++i) {
    const PgRow row(r, i);
    ASSIGN_OR_RETURN(UserId user, row.User(0));
    ASSIGN_OR_RETURN(SegmentId id, row.Int64(1));
    out[user].push_back(id);
  }
  return out;
}

absl::Status PgMembershipRepository::DeleteOfUsers(const std::vector<std::pair<UserId, SegmentId>>& rows) {
  if (rows.empty()) return absl::OkStatus();
  std::vector<UserId> users;
  std::vector<int64_t> segments;
  users.reserve(rows.size());
  segments.reserve(rows.size());
  for (const auto& [user, segment] : rows) {
    users.push_back(user);
    segments.push_back(segment);
  }
  tx_.NoteReadModelChange();
  return tx_.conn().Execute(kDeleteUsersMemberships, PgParams().Users(users).IntArray(segments)).status();
}

absl::Status PgMembershipRepository::RecordOptOutsOfUsers(const std::vector<domain::OptOut>& opt_outs, absl::Time now) {
  if (opt_outs.empty()) return absl::OkStatus();
  std::vector<UserId> users;
  std::vector<int64_t> segments;
  std::vector<std::string> reasons;
  for (const domain::OptOut& o : opt_outs) {
    users.push_back(o.user);
    segments.push_back(o.segment_id);
    reasons.emplace_back(domain::ToString(o.reason));
  }
  PgParams params;
  params.Users(users).IntArray(segments).TextArray(reasons).Time(now);
  return tx_.conn().Execute(kRecordUsersOptOuts, params).status();
}

absl::StatusOr<int64_t> PgMembershipRepository::EndAllOfUsers(const std::vector<UserId>& users, Reason reason,
                                                              absl::Time now) {
  if (users.empty()) return 0;
  tx_.NoteReadModelChange();
  return tx_.CountOf(kEndUsersMemberships, PgParams().Users(users).Text(domain::ToString(reason)).Time(now));
}

absl::StatusOr<std::vector<std::string>> PgMembershipQueries::ActiveSegmentSlugs(const UserId& user, absl::Time now) {
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<std::string>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kActiveSegmentSlugs, PgParams().User(user).Time(now)));
    std::vector<std::string> slugs;
    slugs.reserve(static_cast<size_t>(r.Rows()));
    for (int i = 0; i < r.Rows(); ++i) {
      ASSIGN_OR_RETURN(std::string slug, PgRow(r, i).Text(0));
      slugs.push_back(std::move(slug));
    }
    return slugs;
  });
}

absl::StatusOr<std::vector<domain::SegmentMember>> PgMembershipQueries::Members(SegmentId segment,
                                                                                const std::optional<UserId>& after_user,
                                                                                int limit, absl::Time now) {
  PgParams params;
  params.Int(segment).Time(now).Int(limit);
  if (after_user) params.User(*after_user);
  return WithPooledConnection(pool_, [&](PgPool::Lease& conn) -> absl::StatusOr<std::vector<domain::SegmentMember>> {
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(after_user ? kNextMembers : kFirstMembers, params));
    std::vector<domain::SegmentMember> members;
    members.reserve(static_cast<size_t>(r.Rows()));
    for (int i = 0; i < r.Rows(); ++i) {
      const PgRow row(r, i);
      ASSIGN_OR_RETURN(UserId user, row.User(0));
      domain::SegmentMember m{user};
      ASSIGN_OR_RETURN(m.added_at, row.Micros(1));
      ASSIGN_OR_RETURN(m.expires_at, row.OptionalMicros(2));
      ASSIGN_OR_RETURN(m.automatic, row.Bool(3));
      members.push_back(m);
    }
    return members;
  });
}

}  // namespace segments::storage
