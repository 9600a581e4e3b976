// Every SQL statement of the service, named. Each is prepared once per
// connection under its name. Times travel as text in (RFC 3339, UTC) and as
// microseconds since the epoch out.
#pragma once

namespace segments::storage {

struct Statement {
  const char* name;
  const char* sql;
};

#define SEGMENTS_MICROS(column) "(extract(epoch FROM " column ") * 1000000)::int8"

// --- users
inline constexpr Statement kLockUser{"lock_user", "SELECT state FROM users WHERE id = $1 FOR UPDATE"};
inline constexpr Statement kInsertUser{
    "insert_user",
    "INSERT INTO users (id, state, created_at, updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT (id) DO NOTHING"};
inline constexpr Statement kSetUserState{"set_user_state",
                                         "UPDATE users SET state = $2, updated_at = $3 WHERE id = $1"};
inline constexpr Statement kDeleteUser{"delete_user", "DELETE FROM users WHERE id = $1"};

// --- segments
#define SEGMENTS_SEGMENT_COLUMNS \
  "id, slug, coalesce(round(percent_to_fill * 100), 0)::int4, description, salt, " SEGMENTS_MICROS("created_at")

// ON CONFLICT waits for a concurrent insert of the same slug and then yields
// no row, so racing creators get ALREADY_EXISTS rather than an error.
inline constexpr Statement kInsertSegment{
    "insert_segment",
    "INSERT INTO segments (slug, percent_to_fill, description, salt, created_at) "
    "VALUES ($1, nullif($2::int4, 0) / 100.0, $3, $4, $5) "
    "ON CONFLICT (slug) WHERE deleted_at IS NULL DO NOTHING "
    "RETURNING " SEGMENTS_SEGMENT_COLUMNS};
inline constexpr Statement kMarkSegmentDeleted{
    "mark_segment_deleted",
    "UPDATE segments SET deleted_at = $2 WHERE slug = $1 AND deleted_at IS NULL RETURNING " SEGMENTS_SEGMENT_COLUMNS};
// $1 slug, $2 now: the live segment and its active memberships.
inline constexpr Statement kFindSegment{
    "find_segment",
    "SELECT " SEGMENTS_SEGMENT_COLUMNS ", (SELECT count(*) FROM memberships m WHERE m.segment_id = s.id "
    "AND (m.expires_at IS NULL OR m.expires_at > $2)) FROM segments s WHERE slug = $1 AND deleted_at IS NULL"};
// FOR SHARE blocks a concurrent deletion until this transaction ends.
inline constexpr Statement kLockLiveSegments{
    "lock_live_segments",
    "SELECT " SEGMENTS_SEGMENT_COLUMNS " FROM segments "
    "WHERE slug = ANY($1::text[]) AND deleted_at IS NULL FOR SHARE"};

// Fills a new automatic segment: $1 segment id, $2 salt, $3 slug, $4 its
// percentage in hundredths, $5 now. The fence (OFFSET 0) makes each user's
// digest be computed once, however often segment_bucket_of_digest reads it.
inline constexpr Statement kAssignByPercent{
    "assign_by_percent",
    "WITH picked AS (SELECT id FROM (SELECT id, segment_digest($2, id) AS digest FROM users "
    "WHERE state = 'active' OFFSET 0) AS u WHERE segment_bucket_of_digest(digest) < $4), "
    "m AS (INSERT INTO memberships (user_id, segment_id, added_at, auto) SELECT id, $1, $5, true FROM picked "
    "RETURNING user_id), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT user_id, $1, $3, 'add', 'auto_percent', $5 FROM m RETURNING 1) "
    "SELECT count(*) FROM h"};

// --- memberships
// Rows are locked so a concurrent expiry job skips them rather than racing.
inline constexpr Statement kUserMemberships{
    "user_memberships",
    "SELECT m.segment_id, s.slug, " SEGMENTS_MICROS("m.added_at") ", " SEGMENTS_MICROS("m.expires_at")
    " FROM memberships m JOIN segments s ON s.id = m.segment_id WHERE m.user_id = $1 FOR UPDATE OF m"};
inline constexpr Statement kInsertMemberships{
    "insert_memberships",
    "INSERT INTO memberships (user_id, segment_id, added_at, expires_at) "
    "SELECT $1, segment_id, $3, expires_at FROM unnest($2::int8[], $4::timestamptz[]) AS t(segment_id, expires_at)"};
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

// A membership already expired at $now ended at its deadline, by TTL.
#define SEGMENTS_ENDED(reason, now)                                                             \
  "'remove', CASE WHEN e.expires_at <= " now " THEN 'ttl' ELSE " reason "::history_reason END, " \
  "CASE WHEN e.expires_at <= " now " THEN e.expires_at ELSE " now "::timestamptz END"

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
    "SELECT $1, e.segment_id, s.slug, " SEGMENTS_ENDED("$2", "$3") " FROM e JOIN segments s ON s.id = e.segment_id"
    SEGMENTS_COUNT_ENDED_NOW};

// TTL expiry, one batch: $1 now, $2 batch size. SKIP LOCKED leaves rows that
// another job or a user's update holds to them; that transaction ends them
// or the next pass does. The event is stamped with the deadline.
inline constexpr Statement kEndExpiredMemberships{
    "end_expired_memberships",
    "WITH due AS (SELECT user_id, segment_id FROM memberships WHERE expires_at <= $1 "
    "ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "e AS (DELETE FROM memberships m USING due WHERE m.user_id = due.user_id AND m.segment_id = due.segment_id "
    "RETURNING m.user_id, m.segment_id, m.expires_at), "
    "h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at) "
    "SELECT e.user_id, e.segment_id, s.slug, 'remove', 'ttl', e.expires_at FROM e JOIN segments s ON s.id = e.segment_id "
    "RETURNING 1) SELECT count(*) FROM h"};

// --- history reads
#define SEGMENTS_HISTORY_COLUMNS \
  "user_id, segment_id, slug, operation, reason, " SEGMENTS_MICROS("at") ", id"

// A report's rows in the order of history_report_order_idx, read with FETCH
// inside one transaction, so the whole report is one snapshot. The month is
// [$1, $2) for everyone, or [$2, $3) for user $1. A BINARY cursor: the rows
// come in PostgreSQL's binary format (no output functions there, no number
// parsing here), columns as in SEGMENTS_REPORT_COLUMNS.
#define SEGMENTS_REPORT_COLUMNS "user_id, segment_id, slug, operation, reason, at, id"
inline constexpr const char* kReportCursor = "history_report";
inline constexpr Statement kDeclareReportAllUsers{
    "declare_report_all_users",
    "DECLARE history_report BINARY NO SCROLL CURSOR FOR SELECT " SEGMENTS_REPORT_COLUMNS
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
    "SELECT " SEGMENTS_HISTORY_COLUMNS " FROM history WHERE user_id = $1 "
    "AND ($2::text IS NULL OR slug = $2) AND ($3::timestamptz IS NULL OR at >= $3) "
    "AND ($4::timestamptz IS NULL OR at < $4) AND ($5::timestamptz IS NULL OR (at, id) < ($5, $6::int8)) "
    "ORDER BY at DESC, id DESC LIMIT $7"};

#undef SEGMENTS_HISTORY_COLUMNS
#undef SEGMENTS_COUNT_ENDED_NOW
#undef SEGMENTS_ENDED
#undef SEGMENTS_SEGMENT_COLUMNS
#undef SEGMENTS_MICROS

}  // namespace segments::storage
