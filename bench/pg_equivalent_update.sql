-- pgbench script: the database work of one UpdateUserSegments that toggles
-- one segment for one user, as bare SQL, for bench/run_grpc_bench.sh's
-- "pg-equiv" rows and its ratio update/pg-equivalent (issue 15). The runner
-- runs it on the same database (segments_bench, bench/seed.sql), right after
-- the gRPC update mode, with as many clients as that mode has calls in
-- flight, for the same warmup and duration:
--
--   pgbench -n -M prepared -c 64 -j 2 -T 13 -f bench/pg_equivalent_update.sql \
--     -D toggle=<id of BENCH_TOGGLE> -D slug=BENCH_TOGGLE -D stripe=100 -D step=0 \
--     -l --log-prefix=... postgresql://...
--
-- Why this is the equivalent. What a caller asks for ("user U joins segment
-- S for an hour", or "leaves it") cannot commit with less than this, whatever
-- the server does around it:
--   1. lock the user's row, so that the user's changes (and a deletion of
--      the user) happen one after another: FOR NO KEY UPDATE, the weakest
--      lock that does it (FOR UPDATE costs the same: either writes the
--      row's lock into its tuple and the WAL);
--   2. the membership row itself: one INSERT (join; deadline an hour on, as
--      the loader's secondsToBeInSegment=3600) or one DELETE (leave), which
--      also fires the schema's statement triggers on memberships (the
--      membership_changes note that the read models follow: any writer pays
--      it, db/schema.sql version 6);
--   3. one history row (add or remove, reason manual);
--   4. COMMIT: one WAL flush (synchronous_commit on, as for the server).
-- Five round trips, each statement prepared once per connection (-M
-- prepared), as the server prepares its statements.
--
-- The toggle is the gRPC update mode's (bench/grpc_load.cc, --update-stripe
-- 100): client c owns users c*100 .. c*100+99 of the seed (ids
-- 00000000-0000-4000-8000-%012x, as bench/seed.sql makes them) and walks
-- them, adding the segment on the first pass, removing it on the next, and
-- so on. So no two clients touch the same user, every transaction is
-- expected to succeed on a seeded database whose BENCH_TOGGLE is empty (the
-- runner empties it first), rows do not pile up, and both sides do the same
-- mix of adds and removes. pgbench keeps a client's variables from one
-- transaction to the next, so `step` counts the client's transactions.
--
-- What it leaves out, because a caller does not ask for it or because it is
-- the service's own overhead: gRPC and protobuf, validation, the worker
-- pool; finding the segment by its slug (the id comes as a variable) and
-- reading the user's other memberships (their expired rows end first, by the
-- contract: none expire during the bench); any other lock (advisory or on
-- the segment's row); the opt-out row a hand removal records for automatic
-- assignment (auto_opt_outs, written on the first removal of a user, a
-- no-op ON CONFLICT after that); and, with the read model on, waiting until
-- the server's model holds the change before answering. PostgreSQL, the
-- data and the machine are the same; pgbench runs where the loader ran.

\set user :client_id * :stripe + :step % :stripe
\set adding 1 - (:step / :stripe) % 2
\set step :step + 1
BEGIN;
SELECT state FROM users
WHERE id = ('00000000-0000-4000-8000-' || lpad(to_hex(:user::int8), 12, '0'))::user_id
FOR NO KEY UPDATE;
\if :adding
INSERT INTO memberships (user_id, segment_id, added_at, expires_at)
VALUES (('00000000-0000-4000-8000-' || lpad(to_hex(:user::int8), 12, '0'))::user_id, :toggle,
        now(), now() + interval '3600 seconds');
INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
VALUES (('00000000-0000-4000-8000-' || lpad(to_hex(:user::int8), 12, '0'))::user_id, :toggle, :slug,
        'add', 'manual', now());
\else
DELETE FROM memberships
WHERE user_id = ('00000000-0000-4000-8000-' || lpad(to_hex(:user::int8), 12, '0'))::user_id
  AND segment_id = :toggle;
INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
VALUES (('00000000-0000-4000-8000-' || lpad(to_hex(:user::int8), 12, '0'))::user_id, :toggle, :slug,
        'remove', 'manual', now());
\endif
COMMIT;
