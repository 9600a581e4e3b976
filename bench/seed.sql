-- Benchmark data for bench/run_grpc_bench.sh, loaded set-based into an empty
-- database that has db/schema.sql applied:
--   :users users (default 100000), id i = 00000000-0000-4000-8000-%012x (hex of i,
--     i = 0 .. users-1, as segments-grpc-load derives them), state active;
--   segments BENCH_1 .. BENCH_5, every user a permanent member of each;
--   segment BENCH_TOGGLE with no members (the update mode adds/removes it).
-- No history rows. Usage:
--   psql -X -v ON_ERROR_STOP=1 [-v users=N] -f bench/seed.sql
\set ON_ERROR_STOP 1
\if :{?users}
\else
  \set users 100000
\endif

BEGIN;

-- The literal goes through text so this works whether state is text or an enum.
INSERT INTO users (id, state, created_at, updated_at)
SELECT format('00000000-0000-4000-8000-%s', lpad(to_hex(i), 12, '0')), 'active', now(), now()
FROM generate_series(0, :users - 1) AS i;

INSERT INTO segments (slug, salt, description, created_at)
SELECT slug, md5(slug), 'benchmark segment', now()
FROM unnest(ARRAY['BENCH_1', 'BENCH_2', 'BENCH_3', 'BENCH_4', 'BENCH_5', 'BENCH_TOGGLE']) AS slug;

INSERT INTO memberships (user_id, segment_id, added_at, expires_at)
SELECT u.id, s.id, now(), NULL
FROM users u
CROSS JOIN segments s
WHERE s.slug IN ('BENCH_1', 'BENCH_2', 'BENCH_3', 'BENCH_4', 'BENCH_5')
ORDER BY u.id, s.id;

COMMIT;

-- Statistics and the visibility map, as a settled production table would have.
VACUUM (ANALYZE) users, segments, memberships;

SELECT (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM segments) AS segments,
       (SELECT count(*) FROM memberships) AS memberships;
