-- Time-travel data (bench/run_time_travel_bench.sh), loaded on top of
-- bench/history_seed.sql's report data (:users users, :slugs segments
-- 'AVITO_EXPERIMENT_NN' with ids 1..:slugs, year :year):
--
-- * `segments` rows for those :slugs slugs (ids 1..:slugs) and for
--   'AVITO_BIG' (id :big_segment_id), all created at the start of :year, so
--   the server resolves the slugs (time-travel reads look a slug up in
--   `segments` and answer only from its created_at on).
-- * AVITO_BIG's history: :big_members users (the report data's users,
--   md5('user-' || u)::uuid for u = 0 .. :big_members - 1), each with exactly
--   one `add` somewhere in :year (uniform), and :big_removed_pct percent of
--   them (~200,000 of 1,000,000) with one `remove` later, before the year
--   ends. Unlike the report data's random events, these alternate per user,
--   so counts and member lists are exact and can be checked.
--   Adds: 70% manual (actor 'analyst@bench'), 30% auto_percent (actor
--   'system'). Removes: 50% manual, 35% ttl (the `add` then carries the
--   deadline in expires_at and the `remove` is at it, as the server writes
--   them since migration 15), 15% user_deleted. Members never removed have
--   no deadline.
--
-- Every value derives from the member number u with hashint8extended, so two
-- loads give the same rows. AVITO_BIG's rows are appended after the report
-- data (their ids are the last ones, in time order among themselves); the
-- time-travel reads go through history_segment_member_idx, not heap order.
--
-- Fast path, as in history_seed.sql: the indexes are dropped, the rows go in
-- with one INSERT ... SELECT, the other indexes are rebuilt from their saved
-- definitions, VACUUM (ANALYZE), CHECKPOINT; then history_segment_member_idx
-- alone is built on the settled table (the cost of adding it to an existing
-- history), with its time kept in bench_time_travel_seed (and every other
-- step's). Run with psql -v ON_ERROR_STOP=1 after history_seed.sql.

\if :{?users} \else \set users 1000000 \endif
\if :{?slugs} \else \set slugs 50 \endif
\if :{?year} \else \set year 2023 \endif
\if :{?big_members} \else \set big_members 1000000 \endif
\if :{?big_removed_pct} \else \set big_removed_pct 20 \endif
\if :{?big_segment_id} \else \set big_segment_id 51 \endif

SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
SET synchronous_commit = off;
\timing on

DROP TABLE IF EXISTS bench_time_travel_seed;
CREATE TABLE bench_time_travel_seed (step text PRIMARY KEY, seconds numeric NOT NULL);

\echo [time_travel_seed] segments rows: :slugs report segments and AVITO_BIG (id :big_segment_id)
SELECT clock_timestamp() AS t0 \gset
DELETE FROM segments WHERE id BETWEEN 1 AND :slugs OR id = :big_segment_id OR slug = 'AVITO_BIG'
  OR slug LIKE 'AVITO\_EXPERIMENT\_%';
INSERT INTO segments (id, slug, salt, description, created_at) OVERRIDING SYSTEM VALUE
SELECT s, 'AVITO_EXPERIMENT_' || lpad(s::text, 2, '0'), 'bench-salt-' || s, 'report benchmark segment',
       make_timestamptz(:year, 1, 1, 0, 0, 0, 'UTC')
FROM generate_series(1, :slugs) AS s
UNION ALL
SELECT :big_segment_id, 'AVITO_BIG', 'bench-salt-big', 'time-travel benchmark: one add per user, some removed',
       make_timestamptz(:year, 1, 1, 0, 0, 0, 'UTC');
SELECT setval(pg_get_serial_sequence('segments', 'id'), (SELECT max(id) FROM segments));
INSERT INTO bench_time_travel_seed VALUES ('segments rows', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));

\echo [time_travel_seed] dropping the indexes of history
SELECT clock_timestamp() AS t0 \gset
CREATE TEMP TABLE tt_saved_indexes AS
  SELECT indexname, indexdef FROM pg_indexes
  WHERE schemaname = 'public' AND tablename = 'history' AND indexname <> 'history_pkey';
SELECT count(*) = 1 AS has_member_idx FROM tt_saved_indexes WHERE indexname = 'history_segment_member_idx' \gset
\if :has_member_idx
\else
  \echo [time_travel_seed] ERROR: history has no history_segment_member_idx (db/schema.sql before migration 15?)
  SELECT 1 / 0;
\endif
DELETE FROM history WHERE segment_id = :big_segment_id;
ALTER TABLE history DROP CONSTRAINT IF EXISTS history_pkey;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT indexname FROM tt_saved_indexes LOOP
    EXECUTE format('DROP INDEX %I', r.indexname);
  END LOOP;
END
$$;
INSERT INTO bench_time_travel_seed VALUES ('drop indexes', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));

\echo [time_travel_seed] inserting AVITO_BIG: :big_members adds, ~:big_removed_pct% removed later, year :year
SELECT clock_timestamp() AS t0 \gset
INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at, actor)
SELECT m.user_id, :big_segment_id, 'AVITO_BIG', e.operation::history_operation, e.reason::history_reason, e.at,
       e.expires_at, CASE WHEN e.reason = 'manual' THEN 'analyst@bench' ELSE 'system' END
FROM (
  SELECT md5('user-' || u)::uuid::text AS user_id, added,
         CASE WHEN a < 70 THEN 'manual' ELSE 'auto_percent' END AS add_reason,
         CASE WHEN gone THEN added + (year_end - added) * (0.001 + 0.998 * f) END AS removed,
         CASE WHEN r < 50 THEN 'manual' WHEN r < 85 THEN 'ttl' ELSE 'user_deleted' END AS remove_reason
  FROM generate_series(0, :big_members - 1) AS u,
       LATERAL (SELECT make_timestamptz(:year, 1, 1, 0, 0, 0, 'UTC') AS year_start,
                       make_timestamptz(:year + 1, 1, 1, 0, 0, 0, 'UTC') AS year_end) AS y,
       LATERAL (SELECT y.year_start + (y.year_end - y.year_start)
                         * ((abs(hashint8extended(u, 21)) % 1000000000)::float8 / 1e9) AS added,
                       abs(hashint8extended(u, 22)) % 100 < :big_removed_pct AS gone,
                       (abs(hashint8extended(u, 23)) % 1000000000)::float8 / 1e9 AS f,
                       abs(hashint8extended(u, 24)) % 100 AS a,
                       abs(hashint8extended(u, 25)) % 100 AS r) AS d
) AS m,
LATERAL (VALUES ('add', m.add_reason, m.added, CASE WHEN m.remove_reason = 'ttl' THEN m.removed END),
                ('remove', m.remove_reason, m.removed, NULL)) AS e(operation, reason, at, expires_at)
WHERE e.at IS NOT NULL
ORDER BY e.at, m.user_id;
INSERT INTO bench_time_travel_seed VALUES ('insert AVITO_BIG', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));

\echo [time_travel_seed] building the other indexes
SELECT clock_timestamp() AS t0 \gset
ALTER TABLE history ADD CONSTRAINT history_pkey PRIMARY KEY (id);
INSERT INTO bench_time_travel_seed VALUES ('build history_pkey', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));
DO $$
DECLARE
  r record;
  t timestamptz;
BEGIN
  FOR r IN SELECT indexname, indexdef FROM tt_saved_indexes
           WHERE indexname <> 'history_segment_member_idx' ORDER BY indexname LOOP
    t := clock_timestamp();
    EXECUTE r.indexdef;
    INSERT INTO bench_time_travel_seed VALUES ('build ' || r.indexname, extract(epoch FROM clock_timestamp() - t));
  END LOOP;
END
$$;

\echo [time_travel_seed] VACUUM (ANALYZE) and CHECKPOINT
SELECT clock_timestamp() AS t0 \gset
VACUUM (ANALYZE) history;
ANALYZE segments;
CHECKPOINT;
INSERT INTO bench_time_travel_seed VALUES ('vacuum, analyze, checkpoint', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));

-- The index the time-travel reads use, built last and alone, on a table
-- that is vacuumed and checkpointed: what migration 15 costs on a history
-- this size (maintenance_work_mem 1GB, max_parallel_maintenance_workers as
-- the cluster has it).
\echo [time_travel_seed] building history_segment_member_idx alone
SELECT clock_timestamp() AS t0 \gset
SELECT indexdef || ';' FROM tt_saved_indexes WHERE indexname = 'history_segment_member_idx' \gexec
INSERT INTO bench_time_travel_seed VALUES ('build history_segment_member_idx', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));
CHECKPOINT;
\timing off
