-- History for the report benchmark (bench/run_report_bench.sh): :events
-- events of :users users in :slugs segments over the 12 months of :year, plus
-- :chosen_per_month events a month of one chosen user, :chosen_user.
--
-- Run with psql -v ON_ERROR_STOP=1 on a database with db/schema.sql applied;
-- it empties `history` first. Every value is derived from the row number k
-- with hash functions, so two loads with the same variables give the same rows.
--
-- * Times grow with k (a constant event rate, as if appended live), each
--   month holds events/12 of them (833,333 of 10,000,000), so the heap is in
--   time order like a real append-only history table: a month's rows are
--   contiguous and id order equals time order.
-- * User of event k: md5('user-' || u)::uuid with u = hash(k) mod :users, so
--   each user has Poisson(events/users) events scattered over the year and
--   all but a handful of the :users ids occur.
-- * Segment: hash(k) mod :slugs, slug 'AVITO_EXPERIMENT_NN' (19 characters,
--   so a CSV line is about 90 bytes); 55% add (reason manual), 45% remove
--   (manual 25%, ttl 15%, segment_deleted 3%, user_deleted 2%).
-- * The chosen user: exactly :chosen_per_month events in every month, evenly
--   spaced, alternately adding and removing one segment after another,
--   appended after the bulk (so their ids are the last ones).
--
-- Fast path: the indexes (primary key included) are dropped, the rows go in
-- with one INSERT ... SELECT each, the indexes are built again from their
-- saved definitions (whatever db/schema.sql says), then VACUUM (ANALYZE)
-- sets hint bits and the visibility map and CHECKPOINT writes it all out, so
-- the first report does not pay for any of it. \timing prints each step.

\if :{?events} \else \set events 10000000 \endif
\if :{?users} \else \set users 1000000 \endif
\if :{?slugs} \else \set slugs 50 \endif
\if :{?year} \else \set year 2023 \endif
\if :{?chosen_user} \else \set chosen_user '11111111-2222-4333-8444-555555555555' \endif
\if :{?chosen_per_month} \else \set chosen_per_month 100 \endif

SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
SET synchronous_commit = off;
\timing on

\echo [history_seed] dropping the indexes of history
CREATE TEMP TABLE bench_saved_indexes AS
  SELECT indexname, indexdef FROM pg_indexes
  WHERE schemaname = 'public' AND tablename = 'history' AND indexname <> 'history_pkey';
TRUNCATE history RESTART IDENTITY;
ALTER TABLE history DROP CONSTRAINT IF EXISTS history_pkey;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT indexname FROM bench_saved_indexes LOOP
    EXECUTE format('DROP INDEX %I', r.indexname);
  END LOOP;
END
$$;

\echo [history_seed] inserting :events events of :users users, :slugs segments, year :year
INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
SELECT md5('user-' || abs(hashint8extended(k, 1) % :users))::uuid::text,
       s + 1,
       'AVITO_EXPERIMENT_' || lpad((s + 1)::text, 2, '0'),
       CASE WHEN r < 55 THEN 'add' ELSE 'remove' END::history_operation,
       CASE WHEN r < 80 THEN 'manual' WHEN r < 95 THEN 'ttl'
            WHEN r < 98 THEN 'segment_deleted' ELSE 'user_deleted' END::history_reason,
       month_start + (month_start + interval '1 month' - month_start) * frac
FROM generate_series(0, :events - 1) AS k,
     LATERAL (SELECT abs(hashint8extended(k, 2) % :slugs) AS s,
                     abs(hashint8extended(k, 3) % 100) AS r,
                     make_timestamptz(:year, (k * 12 / :events)::int + 1, 1, 0, 0, 0, 'UTC') AS month_start,
                     ((k * 12) % :events)::float8 / :events AS frac) AS d;

\echo [history_seed] inserting :chosen_per_month events a month of :chosen_user
INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
SELECT :'chosen_user'::uuid::text,
       j / 2 % :slugs + 1,
       'AVITO_EXPERIMENT_' || lpad((j / 2 % :slugs + 1)::text, 2, '0'),
       CASE WHEN j % 2 = 0 THEN 'add' ELSE 'remove' END::history_operation,
       'manual',
       month_start + (month_start + interval '1 month' - month_start) * ((j + 0.5) / :chosen_per_month)
FROM generate_series(1, 12) AS m,
     LATERAL make_timestamptz(:year, m, 1, 0, 0, 0, 'UTC') AS month_start,
     generate_series(0, :chosen_per_month - 1) AS j;

\echo [history_seed] building the indexes
ALTER TABLE history ADD CONSTRAINT history_pkey PRIMARY KEY (id);
SELECT indexdef || ';' FROM bench_saved_indexes ORDER BY indexname \gexec

\echo [history_seed] VACUUM (ANALYZE) and CHECKPOINT
VACUUM (ANALYZE) history;
CHECKPOINT;
\timing off
