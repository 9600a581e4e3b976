-- Data of bench/run_read_model_memory.sh, loaded set-based into an empty
-- database that has db/schema.sql applied:
--   :users users (default 2000000), state active, with random-looking UUIDs
--     (md5 of 'bench-user-' || i, i = 0 .. users-1): the read model's table
--     gets no help from sequential ids;
--   segments BENCH_1 .. BENCH_5, every user a member of each (5 x :users
--     memberships); :expiring_pct percent of them (default 20, picked by a
--     hash of user and segment) have a deadline 30 to 31 days ahead, the
--     others none, so all are live and loaded.
-- The rows go in in primary-key order. The change-note triggers of schema
-- version 6 are skipped (session_replication_role = replica, superuser
-- only): no server runs during the seed, and a starting server loads
-- everything anyway. Usage:
--   psql -X -v ON_ERROR_STOP=1 [-v users=N] [-v expiring_pct=P] -f bench/read_model_seed.sql
\set ON_ERROR_STOP 1
\if :{?users}
\else
  \set users 2000000
\endif
\if :{?expiring_pct}
\else
  \set expiring_pct 20
\endif

SET work_mem = '256MB';
SET maintenance_work_mem = '512MB';
SET session_replication_role = replica;

BEGIN;

INSERT INTO users (id, state, created_at, updated_at)
SELECT md5('bench-user-' || i)::uuid::text, 'active', now(), now()
FROM generate_series(0, :users - 1) AS i
ORDER BY 1;

INSERT INTO segments (slug, salt, description, created_at)
SELECT slug, md5(slug), 'benchmark segment', now()
FROM unnest(ARRAY['BENCH_1', 'BENCH_2', 'BENCH_3', 'BENCH_4', 'BENCH_5']) AS slug;

INSERT INTO memberships (user_id, segment_id, added_at, expires_at)
SELECT u.id, s.id, now(),
       CASE WHEN h.v % 100 < :expiring_pct THEN now() + interval '30 days' + (h.v % 86400) * interval '1 second' END
FROM users u
CROSS JOIN segments s
CROSS JOIN LATERAL (SELECT abs(hashtext(u.id || ':' || s.id)::bigint) AS v) h
ORDER BY u.id, s.id;

COMMIT;

RESET session_replication_role;
-- Statistics, hint bits and the visibility map, as a settled database has.
VACUUM (ANALYZE) users, segments, memberships;

SELECT (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM memberships) AS memberships,
       (SELECT count(*) FROM memberships WHERE expires_at IS NOT NULL) AS with_deadline;
