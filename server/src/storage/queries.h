// Every SQL statement of the service, named. Each is prepared once per
// connection under its name. Times travel as text in (RFC 3339, UTC) and as
// microseconds since the epoch out.
#pragma once

namespace segments::storage {

struct Statement {
  const char* name;
  const char* sql;
  // Planned with the actual values on every call instead of prepared once.
  // For statements over arrays of ids: a prepared one switches to a generic
  // plan after five calls, and one made while `users` was small (a replica
  // filling from a backlog) scans the whole table for good.
  bool plan_per_call = false;
};

#define SEGMENTS_MICROS(column) "(extract(epoch FROM " column ") * 1000000)::int8"

// --- users
inline constexpr Statement kLockUser{"lock_user", "SELECT state FROM users WHERE id = $1 FOR UPDATE"};
inline constexpr Statement kInsertUser{
    "insert_user",
    "INSERT INTO users (id, state, created_at, updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO NOTHING"};
inline constexpr Statement kSetUserState{"set_user_state",
                                         "UPDATE users SET state = $2, updated_at = $3 WHERE id = $1"};
// Many users at once (user events). Parallel arrays: ids and states.
inline constexpr Statement kLockUsers{
    "lock_users", "SELECT id, state FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", true};
inline constexpr Statement kInsertUsers{
    "insert_users",
    "INSERT INTO users (id, state, created_at, updated_at) "
    "SELECT id, state, $3, $3 FROM unnest($1::uuid[], $2::user_state[]) AS t(id, state) ORDER BY id "
    "ON CONFLICT (id) DO NOTHING"};
inline constexpr Statement kSetUserStates{"set_user_states",
                                          "UPDATE users u SET state = t.state, updated_at = $3 "
                                          "FROM unnest($1::uuid[], $2::user_state[]) AS t(id, state) WHERE u.id = t.id",
                                          true};
inline constexpr Statement kDeleteUser{
    "delete_user", "WITH o AS (DELETE FROM auto_opt_outs WHERE user_id = $1) DELETE FROM users WHERE id = $1"};

// --- the automatic-assignment lock (domain::AutoAssignmentLock)
#define SEGMENTS_AUTO_LOCK_KEY "hashtext('segments.auto_assignment')"
inline constexpr Statement kLockAutoShared{"lock_auto_shared",
                                           "SELECT pg_advisory_xact_lock_shared(" SEGMENTS_AUTO_LOCK_KEY ")"};
inline constexpr Statement kLockAutoExclusive{"lock_auto_exclusive",
                                              "SELECT pg_advisory_xact_lock(" SEGMENTS_AUTO_LOCK_KEY ")"};
#undef SEGMENTS_AUTO_LOCK_KEY

// --- segments
// Read by SegmentAt: the options' ids as "1,2" and their slugs as "A,B"
// (sorted; slugs cannot hold commas), the TTL NULL when permanent.
#define SEGMENTS_OPTION_SLUGS(column)                                                            \
  "(SELECT coalesce(string_agg(o.slug, ',' ORDER BY o.slug COLLATE \"C\"), '') FROM segments o " \
  "WHERE o.id = ANY(segments." column "))"
#define SEGMENTS_SEGMENT_COLUMNS \
  "segments.id, segments.slug, coalesce(round(segments.percent_to_fill * 100), 0)::int4, segments.description, "  \
  "segments.salt, " SEGMENTS_MICROS("segments.created_at") ", array_to_string(segments.auto_include, ','), "      \
  "array_to_string(segments.auto_exclude, ','), segments.auto_ttl_seconds, " SEGMENTS_OPTION_SLUGS("auto_include") \
  ", " SEGMENTS_OPTION_SLUGS("auto_exclude")

// ON CONFLICT waits for a concurrent insert of the same slug and then yields
// no row, so racing creators get ALREADY_EXISTS rather than an error.
inline constexpr Statement kInsertSegment{
    "insert_segment",
    "INSERT INTO segments (slug, percent_to_fill, description, salt, created_at, auto_include, auto_exclude, "
    "auto_ttl_seconds) VALUES ($1, nullif($2::int4, 0) / 100.0, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (slug) WHERE deleted_at IS NULL DO NOTHING "
    "RETURNING " SEGMENTS_SEGMENT_COLUMNS};
inline constexpr Statement kMarkSegmentDeleted{
    "mark_segment_deleted",
    "UPDATE segments SET deleted_at = $2 WHERE slug = $1 AND deleted_at IS NULL RETURNING " SEGMENTS_SEGMENT_COLUMNS};
// $1 slug, $2 now: the live segment and its active memberships.
inline constexpr Statement kFindSegment{
    "find_segment",
    "SELECT " SEGMENTS_SEGMENT_COLUMNS
    ", (SELECT count(*) FROM memberships m WHERE m.segment_id = segments.id "
    "AND (m.expires_at IS NULL OR m.expires_at > $2)) FROM segments WHERE slug = $1 AND deleted_at IS NULL"};
inline constexpr Statement kLookupSegment{
    "lookup_segment", "SELECT " SEGMENTS_SEGMENT_COLUMNS " FROM segments WHERE slug = $1 AND deleted_at IS NULL"};
// $1 the slug to continue after ('' for the first page), $2 limit.
inline constexpr Statement kListSegments{"list_segments",
                                         "SELECT " SEGMENTS_SEGMENT_COLUMNS
                                         " FROM segments WHERE deleted_at IS NULL AND slug COLLATE \"C\" > $1 "
                                         "ORDER BY slug COLLATE \"C\" LIMIT $2"};
inline constexpr Statement kSegmentsReferring{
    "segments_referring",
    "SELECT slug FROM segments WHERE deleted_at IS NULL AND ($1 = ANY(auto_include) OR $1 = ANY(auto_exclude)) "
    "ORDER BY slug COLLATE \"C\""};
inline constexpr Statement kAutoSegments{"auto_segments",
                                         "SELECT " SEGMENTS_SEGMENT_COLUMNS
                                         " FROM segments WHERE deleted_at IS NULL AND percent_to_fill > 0 ORDER BY id"};
inline constexpr Statement kSetSegmentPercent{
    "set_segment_percent", "UPDATE segments SET percent_to_fill = nullif($2::int4, 0) / 100.0 WHERE id = $1"};
// FOR SHARE blocks a concurrent deletion until this transaction ends.
inline constexpr Statement kLockLiveSegments{"lock_live_segments",
                                             "SELECT " SEGMENTS_SEGMENT_COLUMNS
                                             " FROM segments "
                                             "WHERE slug = ANY($1::text[]) AND deleted_at IS NULL FOR SHARE"};

// A membership already expired at $now ended at its deadline, by TTL.
#define SEGMENTS_ENDED(reason, now)                                     \
  "'remove', CASE WHEN e.expires_at <= " now " THEN 'ttl' ELSE " reason \
  "::history_reason END, "                                              \
  "CASE WHEN e.expires_at <= " now " THEN e.expires_at ELSE " now "::timestamptz END"

// An automatic membership of segment `segment` ended by TTL (rows of CTE e
// with user_id, expires_at and auto) opts its user out, as it is over for good.
#define SEGMENTS_TTL_OPT_OUTS(segment, now)                                                                      \
  "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT " segment ", e.user_id, 'ttl', " now \
  " FROM e WHERE e.auto AND e.expires_at <= " now " ON CONFLICT DO NOTHING) "

// Automatic assignment in two steps. First the users of buckets
// [{from}, {to}) of salt {salt} go into the temporary table auto_picked,
// sorted by id so that the inserts after it walk the indexes in order. Each
// digest is computed once (the OFFSET 0 fence keeps the planner from
// inlining it into every use), and CREATE TABLE AS may hash in parallel
// where an INSERT may not; being a utility statement it takes no parameters,
// so the values come as quoted literals (PgConnection::Quote). {source}
// yields the candidates' ids as `id`.
inline constexpr const char* kPickByBucket =
    "CREATE TEMP TABLE auto_picked ON COMMIT DROP AS SELECT id FROM (SELECT id, segment_digest({salt}, id) AS digest "
    "FROM ({source}) AS c OFFSET 0) AS u "
    "WHERE segment_bucket_of_digest(digest) >= {from} AND segment_bucket_of_digest(digest) < {to} ORDER BY id";
inline constexpr const char* kActiveUsers = "SELECT id FROM users WHERE state = 'active'";
inline constexpr const char* kAutomaticMembersOf =
    "SELECT user_id AS id FROM memberships WHERE segment_id = {segment} AND auto";
// Hashing is worth two workers here (the default costs keep a plan serial
// whose per-row work they do not see).
inline constexpr const char* kAllowParallelPick =
    "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0";
inline constexpr const char* kDropPicked = "DROP TABLE IF EXISTS pg_temp.auto_picked";

// Then expired rows of picked users that no job has removed yet end ($1
// segment id, $2 slug, $3 now): they would stand in the way, and an expired
// automatic one opts its user out before the assignment below looks.
inline constexpr Statement kEndExpiredPicked{
    "end_expired_picked",
    "WITH e AS (DELETE FROM memberships m USING auto_picked p WHERE m.segment_id = $1 AND m.user_id = p.id "
    "AND m.expires_at <= $3 RETURNING m.user_id, m.expires_at, m.auto), " SEGMENTS_TTL_OPT_OUTS("$1", "$3") ", "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $2, 'remove', 'ttl', e.expires_at FROM e RETURNING 1) SELECT count(*) FROM h"};

// Last, the picked users who pass the options ($4 include ids, $5 exclude
// ids, memberships active at $3) and have not opted out become automatic
// members expiring at $6 (NULL: never): $1 segment id, $2 slug, $3 now.
// Nobody else adds members to the segment meanwhile: hand changes wait for
// the exclusive lock.
inline constexpr Statement kAssignPicked{
    "assign_picked",
    "WITH eligible AS (SELECT p.id FROM auto_picked p "
    "WHERE NOT EXISTS (SELECT 1 FROM memberships x WHERE x.user_id = p.id AND x.segment_id = $1) "
    "AND NOT EXISTS (SELECT 1 FROM auto_opt_outs o WHERE o.segment_id = $1 AND o.user_id = p.id) "
    "AND (cardinality($4::int8[]) = 0 OR (SELECT count(*) FROM memberships x WHERE x.user_id = p.id "
    "AND x.segment_id = ANY($4::int8[]) AND (x.expires_at IS NULL OR x.expires_at > $3)) = cardinality($4::int8[])) "
    "AND (cardinality($5::int8[]) = 0 OR NOT EXISTS (SELECT 1 FROM memberships x WHERE x.user_id = p.id "
    "AND x.segment_id = ANY($5::int8[]) AND (x.expires_at IS NULL OR x.expires_at > $3))) ORDER BY p.id), "
    "m AS (INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) "
    "SELECT id, $1, $3, $6, true FROM eligible RETURNING user_id), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT user_id, $1, $2, 'add', 'auto_percent', $3 FROM m RETURNING 1) "
    "SELECT count(*) FROM h"};

// Or the picked automatic members leave: $1 segment id, $2 slug, $3 now.
// Returns how many left at $3 (rows already expired end by TTL at their
// deadline, as everywhere).
inline constexpr Statement kUnassignPicked{
    "unassign_picked",
    "WITH e AS (DELETE FROM memberships m USING auto_picked p WHERE m.segment_id = $1 AND m.user_id = p.id "
    "RETURNING m.user_id, m.expires_at, m.auto), " SEGMENTS_TTL_OPT_OUTS("$1", "$3") ", "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $2, " SEGMENTS_ENDED("'auto_percent'", "$3") " FROM e RETURNING reason) "
    "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h"};

// --- opt-outs
inline constexpr Statement kOptedOutSegments{"opted_out_segments",
                                             "SELECT segment_id FROM auto_opt_outs WHERE user_id = $1"};
// $1 user, $2 segment ids, $3 reason, $4 now.
inline constexpr Statement kRecordOptOuts{
    "record_opt_outs",
    "INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) SELECT unnest($2::int8[]), $1, $3, $4 "
    "ON CONFLICT DO NOTHING"};

// --- bulk membership of one segment: $1 segment id, $2 user ids, $3 slug,
// $4 now.
// FOR KEY SHARE keeps the known users from being deleted until the
// transaction ends (memberships have no foreign keys; schema.sql).
// The known ones among many users, locked against deletion in id order (the
// order every multi-user lock takes, so they cannot deadlock).
inline constexpr Statement kKeyShareUsers{
    "key_share_users", "SELECT id FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR KEY SHARE", true};
// Expired rows of the users that no job has removed yet, which would stand
// in the way of new ones.
inline constexpr Statement kEndExpiredMembersOf{
    "end_expired_members_of",
    "WITH e AS (DELETE FROM memberships WHERE segment_id = $1 AND user_id = ANY($2::uuid[]) AND expires_at <= $4 "
    "RETURNING user_id, expires_at, auto), " SEGMENTS_TTL_OPT_OUTS("$1", "$4") ", "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $3, 'remove', 'ttl', e.expires_at FROM e RETURNING 1) SELECT count(*) FROM h"};
// $5 the deadline or NULL. ON CONFLICT: a user's own change may add the
// same membership meanwhile; then it stays as that change made it.
inline constexpr Statement kAddMembers{
    "add_members",
    "WITH m AS (INSERT INTO memberships (user_id, segment_id, added_at, expires_at) "
    "SELECT id, $1, $4, $5 FROM unnest($2::uuid[]) AS i(id) ORDER BY id ON CONFLICT (user_id, segment_id) DO NOTHING "
    "RETURNING user_id), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT user_id, $1, $3, 'add', 'manual', $4 FROM m RETURNING 1) SELECT count(*) FROM h"};
// A hand removal opts the user out; an automatic row that had expired
// already is a TTL end and opts out as such.
inline constexpr Statement kRemoveMembers{
    "remove_members",
    "WITH e AS (DELETE FROM memberships WHERE segment_id = $1 AND user_id = ANY($2::uuid[]) "
    "RETURNING user_id, expires_at, auto), "
    "o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at) "
    "SELECT $1, e.user_id, CASE WHEN e.expires_at <= $4 THEN 'ttl' ELSE 'manual' END::history_reason, $4 FROM e "
    "WHERE e.auto OR e.expires_at IS NULL OR e.expires_at > $4 ON CONFLICT DO NOTHING), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $3, " SEGMENTS_ENDED("'manual'", "$4") " FROM e RETURNING reason) "
    "SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h"};

// Members of segment $1 active at $2, by user id, at most $3; the next page
// continues after user $4.
#define SEGMENTS_MEMBER_PAGE(after) \
  "SELECT user_id, " SEGMENTS_MICROS("added_at") ", " SEGMENTS_MICROS("expires_at") ", auto FROM memberships " \
  "WHERE segment_id = $1 AND (expires_at IS NULL OR expires_at > $2)" after " ORDER BY user_id LIMIT $3"
inline constexpr Statement kFirstMembers{"first_members", SEGMENTS_MEMBER_PAGE("")};
inline constexpr Statement kNextMembers{"next_members", SEGMENTS_MEMBER_PAGE(" AND user_id > $4")};
#undef SEGMENTS_MEMBER_PAGE

// --- memberships
// Rows are locked so a concurrent expiry job skips them rather than racing.
inline constexpr Statement kUserMemberships{
    "user_memberships",
    "SELECT m.segment_id, s.slug, " SEGMENTS_MICROS("m.added_at") ", " SEGMENTS_MICROS("m.expires_at") ", m.auto"
    " FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.user_id = $1 FOR UPDATE OF m"};
inline constexpr Statement kInsertMembershipsOfUsers{
    "insert_memberships_of_users",
    "INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto) "
    "SELECT user_id, segment_id, $3, expires_at, auto "
    "FROM unnest($1::uuid[], $2::int8[], $4::timestamptz[], $5::bool[]) AS t(user_id, segment_id, expires_at, auto)"};
inline constexpr Statement kDeleteMemberships{
    "delete_memberships", "DELETE FROM memberships WHERE user_id = $1 AND segment_id = ANY($2::int8[])"};
inline constexpr Statement kActiveSegmentSlugs{
    "active_segment_slugs",
    "SELECT s.slug FROM memberships m JOIN segments s ON s.id = m.segment_id "
    "WHERE m.user_id = $1 AND (m.expires_at IS NULL OR m.expires_at > $2)"};

// --- history
inline constexpr Statement kAppendHistory{
    "append_history",
    "INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT * FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::history_operation[], $5::history_reason[], "
    "$6::timestamptz[])"};

// Both return one row: how many memberships ended now, leaving out those
// that had already ended by TTL.
#define SEGMENTS_COUNT_ENDED_NOW " RETURNING reason) SELECT count(*) FILTER (WHERE reason <> 'ttl') FROM h"

// $1 segment id, $2 slug, $3 reason, $4 now.
inline constexpr Statement kEndSegmentMemberships{
    "end_segment_memberships",
    "WITH e AS (DELETE FROM memberships WHERE segment_id = $1 RETURNING user_id, expires_at), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, $1, $2, " SEGMENTS_ENDED("$3", "$4") " FROM e" SEGMENTS_COUNT_ENDED_NOW};
// $1 user id, $2 reason, $3 now.
inline constexpr Statement kEndUserMemberships{
    "end_user_memberships",
    "WITH e AS (DELETE FROM memberships WHERE user_id = $1 RETURNING segment_id, expires_at), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT $1, e.segment_id, s.slug, " SEGMENTS_ENDED(
        "$2", "$3") " FROM e JOIN segments s ON s.id = e.segment_id" SEGMENTS_COUNT_ENDED_NOW};

// TTL expiry, one batch: $1 now, $2 batch size. SKIP LOCKED leaves rows that
// another job or a user's update holds to them; that transaction ends them
// or the next pass does. The event is stamped with the deadline; an
// automatic membership opts its user out.
inline constexpr Statement kEndExpiredMemberships{
    "end_expired_memberships",
    "WITH due AS (SELECT user_id, segment_id FROM memberships WHERE expires_at <= $1 "
    "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "e AS (DELETE FROM memberships m USING due WHERE m.user_id = due.user_id AND m.segment_id = due.segment_id "
    "RETURNING m.user_id, m.segment_id, m.expires_at, m.auto), " SEGMENTS_TTL_OPT_OUTS("e.segment_id", "$1") ", "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, e.segment_id, s.slug, 'remove', 'ttl', e.expires_at FROM e JOIN segments s ON s.id = e.segment_id "
    "RETURNING 1) SELECT count(*) FROM h"};

// --- history reads
#define SEGMENTS_HISTORY_COLUMNS "user_id, segment_id, slug, operation, reason, " SEGMENTS_MICROS("at") ", id"

// A report's rows in the order of history_report_order_idx, read with FETCH
// inside one transaction, so the whole report is one snapshot. The month is
// [$1, $2) for everyone, or [$2, $3) for user $1. A BINARY cursor: the rows
// come in PostgreSQL's binary format (no output functions there, no number
// parsing here), columns as in SEGMENTS_REPORT_COLUMNS.
#define SEGMENTS_REPORT_COLUMNS "user_id, segment_id, slug, operation, reason, at, id"
inline constexpr const char* kReportCursor = "history_report";
inline constexpr Statement kDeclareReportAllUsers{
    "declare_report_all_users", "DECLARE history_report BINARY NO SCROLL CURSOR FOR SELECT " SEGMENTS_REPORT_COLUMNS
                                " FROM history WHERE at >= $1 AND at < $2 ORDER BY at, user_id, slug, id"};
inline constexpr Statement kDeclareReportOneUser{
    "declare_report_one_user",
    "DECLARE history_report BINARY NO SCROLL CURSOR FOR SELECT " SEGMENTS_REPORT_COLUMNS
    " FROM history WHERE user_id = $1 AND at >= $2 AND at < $3 ORDER BY at, user_id, slug, id"};
#undef SEGMENTS_REPORT_COLUMNS

// A page of one user's history, newest first: $1 user, $2 slug or NULL,
// $3 from or NULL, $4 to or NULL, $5 and $6 the (at, id) to continue below or
// NULL, $7 limit.
inline constexpr Statement kUserHistory{
    "user_history",
    "SELECT " SEGMENTS_HISTORY_COLUMNS
    " FROM history WHERE user_id = $1 "
    "AND ($2::text IS NULL OR slug = $2) AND ($3::timestamptz IS NULL OR at >= $3) "
    "AND ($4::timestamptz IS NULL OR at < $4) AND ($5::timestamptz IS NULL OR (at, id) < ($5, $6::int8)) "
    "ORDER BY at DESC, id DESC LIMIT $7"};

#undef SEGMENTS_HISTORY_COLUMNS
#undef SEGMENTS_COUNT_ENDED_NOW
#undef SEGMENTS_ENDED
#undef SEGMENTS_TTL_OPT_OUTS
#undef SEGMENTS_OPTION_SLUGS
#undef SEGMENTS_SEGMENT_COLUMNS
#undef SEGMENTS_MICROS

}  // namespace segments::storage
