-- Users for bench/run_auto_bench.sh: :users active users and :excluded
-- excluded ones, set-based, into an empty database with db/schema.sql
-- applied. Ids are derived from the index i, so every load gives the same
-- rows and the runner can name users without reading the table:
--   active   i = 0 .. :users - 1     md5('auto-bench-user-' || i)::uuid
--   excluded i = 0 .. :excluded - 1 md5('auto-bench-excluded-' || i)::uuid
-- md5 spreads the ids uniformly like random v4 UUIDs, so the heap is in
-- creation order and the primary key is filled in random order, as in
-- production; the excluded users are interleaved (one after every 50 active
-- ones) so that a scan meets them as it would.
-- psql -v users=1000000 -v excluded=20000 -f bench/auto_seed.sql
\set ON_ERROR_STOP on
\timing on

\echo [auto_seed] insert users
INSERT INTO users (id, state, created_at, updated_at)
SELECT CASE WHEN k % 51 = 50 AND k / 51 < :excluded
            THEN md5('auto-bench-excluded-' || (k / 51))::uuid::text
            ELSE md5('auto-bench-user-' || (k - least(k / 51, :excluded)))::uuid::text END,
       CASE WHEN k % 51 = 50 AND k / 51 < :excluded THEN 'excluded' ELSE 'active' END::user_state,
       timestamptz '2023-01-01 00:00:00+00' + k * interval '1 second',
       timestamptz '2023-01-01 00:00:00+00' + k * interval '1 second'
FROM generate_series(0::int8, :users + :excluded - 1) AS k;

\echo [auto_seed] vacuum analyze
-- Visibility map and hint bits set, statistics current: the first scan of
-- the measured run must not be the one that writes every page back.
VACUUM (ANALYZE) users;
\echo [auto_seed] checkpoint
CHECKPOINT;
