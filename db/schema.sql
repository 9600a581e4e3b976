-- Schema of the segments service. Safe to apply any number of times: each
-- numbered migration runs once and is recorded in schema_migrations. Later
-- changes are appended as new numbered blocks; never edit an applied block.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    description text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

DO $migrations$
BEGIN
    -- Serialises concurrent appliers (two instances starting at once).
    PERFORM pg_advisory_xact_lock(hashtext('segments.schema_migrations'));

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 1) THEN
        CREATE TYPE user_state AS ENUM ('active', 'excluded');
        CREATE TYPE history_operation AS ENUM ('add', 'remove');
        CREATE TYPE history_reason AS ENUM (
            'manual', 'ttl', 'auto_percent', 'segment_deleted', 'user_deleted');

        -- Local replica of the user service: id and state only.
        CREATE TABLE users (
            id         uuid        PRIMARY KEY,
            state      user_state  NOT NULL DEFAULT 'active',
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );

        -- Deleted segments stay (deleted_at set) so that history can name
        -- them; a slug is unique among live segments only.
        CREATE TABLE segments (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            slug            text        NOT NULL
                CHECK (slug ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
            salt            text        NOT NULL,
            percent_to_fill numeric(5, 2)
                CHECK (percent_to_fill BETWEEN 0 AND 100),
            description     text        NOT NULL DEFAULT '',
            created_at      timestamptz NOT NULL,
            deleted_at      timestamptz
        );
        CREATE UNIQUE INDEX segments_live_slug_key ON segments (slug) WHERE deleted_at IS NULL;

        -- Keyed by user first: the hot read is "segments of user X".
        CREATE TABLE memberships (
            user_id    uuid        NOT NULL REFERENCES users (id),
            segment_id bigint      NOT NULL REFERENCES segments (id),
            added_at   timestamptz NOT NULL,
            expires_at timestamptz,
            PRIMARY KEY (user_id, segment_id),
            CHECK (expires_at IS NULL OR expires_at > added_at)
        );
        CREATE INDEX memberships_segment_idx ON memberships (segment_id);
        CREATE INDEX memberships_expiry_idx ON memberships (expires_at) WHERE expires_at IS NOT NULL;

        -- Append-only; no foreign keys, so it outlives users and segments.
        CREATE TABLE history (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id    uuid              NOT NULL,
            segment_id bigint            NOT NULL,
            slug       text              NOT NULL,
            operation  history_operation NOT NULL,
            reason     history_reason    NOT NULL,
            at         timestamptz       NOT NULL
        );
        CREATE INDEX history_user_at_idx ON history (user_id, at);
        CREATE INDEX history_at_idx ON history (at, user_id, slug);

        INSERT INTO schema_migrations (version, description) VALUES (1, 'users, segments, memberships, history');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 2) THEN
        -- The id ends each key so that both orders are total and need no
        -- sort: the monthly report reads (at, user_id, slug, id) forwards,
        -- a user's history pages read (user_id, at, id) backwards.
        CREATE INDEX history_report_order_idx ON history (at, user_id, slug, id);
        CREATE INDEX history_user_order_idx ON history (user_id, at, id);
        DROP INDEX history_at_idx;
        DROP INDEX history_user_at_idx;

        INSERT INTO schema_migrations (version, description) VALUES (2, 'history indexes with total orders');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 3) THEN
        -- The bucket of a user for a segment's salt, 0..9999: the first 8
        -- bytes of SHA-256(salt ':' user id) as an unsigned big-endian
        -- integer, mod 10000 (docs/bucketing.md; the same as
        -- domain::Bucket). The 64 bits are read as two 32-bit halves so that
        -- nothing overflows: (hi * 2^32 + lo) mod 10000 =
        -- ((hi mod 10000) * 7296 + lo) mod 10000, as 2^32 mod 10000 = 7296.
        -- segment_bucket_of_digest takes the digest, so that a statement over
        -- many users computes each digest once and this stays inlinable.
        CREATE FUNCTION segment_bucket_of_digest(digest bytea) RETURNS integer
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            RETURN ((((get_byte(digest, 0)::int8 << 24) | (get_byte(digest, 1) << 16) | (get_byte(digest, 2) << 8)
                       | get_byte(digest, 3)) % 10000 * 7296
                     + ((get_byte(digest, 4)::int8 << 24) | (get_byte(digest, 5) << 16) | (get_byte(digest, 6) << 8)
                        | get_byte(digest, 7))) % 10000)::integer;
        -- STABLE, as convert_to is: an IMMUTABLE wrapper would not be inlined.
        CREATE FUNCTION segment_digest(salt text, user_id uuid) RETURNS bytea
            LANGUAGE sql STABLE STRICT PARALLEL SAFE
            RETURN sha256(convert_to(salt || ':' || user_id::text, 'UTF8'));
        CREATE FUNCTION segment_bucket(salt text, user_id uuid) RETURNS integer
            LANGUAGE sql STABLE STRICT PARALLEL SAFE
            RETURN segment_bucket_of_digest(segment_digest(salt, user_id));

        -- Whether the membership was made by automatic assignment (so that
        -- lowering a percentage ends it) or by hand.
        ALTER TABLE memberships ADD COLUMN auto boolean NOT NULL DEFAULT false;

        INSERT INTO schema_migrations (version, description) VALUES (3, 'percentage bucketing');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 4) THEN
        -- Options of automatic assignment: users must be in every segment of
        -- auto_include and in none of auto_exclude (live segments' ids, which
        -- cannot be deleted while a live segment names them), and automatic
        -- memberships last auto_ttl_seconds (NULL: permanent).
        ALTER TABLE segments
            ADD COLUMN auto_include     bigint[] NOT NULL DEFAULT '{}',
            ADD COLUMN auto_exclude     bigint[] NOT NULL DEFAULT '{}',
            ADD COLUMN auto_ttl_seconds bigint CHECK (auto_ttl_seconds > 0);

        -- Users automatic assignment must never (re)add to a segment: those
        -- removed from it by hand (reason manual), and those whose automatic
        -- membership expired (reason ttl). Deleted with the user.
        CREATE TABLE auto_opt_outs (
            segment_id bigint         NOT NULL,
            user_id    uuid           NOT NULL,
            reason     history_reason NOT NULL,
            at         timestamptz    NOT NULL,
            PRIMARY KEY (segment_id, user_id)
        );
        CREATE INDEX auto_opt_outs_user_idx ON auto_opt_outs (user_id);

        -- No foreign keys on memberships: filling a segment inserts up to
        -- millions of rows, and the two FK triggers (a row lock on the user
        -- and one on the segment, per row) cost twice the inserts
        -- themselves. Every writer holds the rows instead, set-based
        -- (domain/store.h): a user is locked (FOR UPDATE, or FOR KEY SHARE by
        -- bulk changes) or protected by the exclusive automatic-assignment
        -- lock, which user deletion takes shared; a segment is locked FOR
        -- SHARE, or protected by the same lock, which segment deletion takes
        -- exclusively; segments are never deleted, only marked.
        ALTER TABLE memberships DROP CONSTRAINT memberships_user_id_fkey,
                                DROP CONSTRAINT memberships_segment_id_fkey;

        -- Members of a segment in user order, for keyset pages; replaces the
        -- index on segment_id alone.
        CREATE INDEX memberships_segment_user_idx ON memberships (segment_id, user_id);
        DROP INDEX memberships_segment_idx;
        -- Live segments in byte order of their slugs, whatever the
        -- database's collation, for keyset pages.
        CREATE INDEX segments_live_slug_bytes_idx ON segments (slug COLLATE "C") WHERE deleted_at IS NULL;

        INSERT INTO schema_migrations (version, description) VALUES (4, 'automatic assignment options, opt-outs, member listing');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 5) THEN
        -- A user id is a UUID or a decimal integer 0..2^63-1, kept as its
        -- canonical text: lowercase 8-4-4-4-12, or digits without sign or
        -- leading zeros. The two forms cannot meet, so a UUID and an integer
        -- never name the same user. The "C" collation orders ids byte by
        -- byte, as domain::UserId orders them, whatever the database's
        -- collation.
        CREATE DOMAIN user_id AS text COLLATE "C"
            CHECK (VALUE ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   OR (VALUE ~ '^(0|[1-9][0-9]{0,18})$'
                       AND (length(VALUE) < 19 OR VALUE <= '9223372036854775807')));

        -- uuid's text is canonical, so existing ids keep their meaning, their
        -- order and their buckets.
        ALTER TABLE users ALTER COLUMN id TYPE user_id USING id::text;
        ALTER TABLE memberships ALTER COLUMN user_id TYPE user_id USING user_id::text;
        ALTER TABLE history ALTER COLUMN user_id TYPE user_id USING user_id::text;
        ALTER TABLE auto_opt_outs ALTER COLUMN user_id TYPE user_id USING user_id::text;

        -- The bucketing functions of version 3 for the new type; the same
        -- text is hashed, so a UUID's bucket does not change.
        DROP FUNCTION segment_bucket(text, uuid);
        DROP FUNCTION segment_digest(text, uuid);
        CREATE FUNCTION segment_digest(salt text, user_id user_id) RETURNS bytea
            LANGUAGE sql STABLE STRICT PARALLEL SAFE
            RETURN sha256(convert_to(salt || ':' || user_id::text, 'UTF8'));
        CREATE FUNCTION segment_bucket(salt text, user_id user_id) RETURNS integer
            LANGUAGE sql STABLE STRICT PARALLEL SAFE
            RETURN segment_bucket_of_digest(segment_digest(salt, user_id));

        INSERT INTO schema_migrations (version, description) VALUES (5, 'user ids: UUIDs or decimal integers, as text');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 6) THEN
        -- What changed, for the membership read models that server instances
        -- hold in memory (docs/read-model.md). Triggers add a row per
        -- statement that changes memberships or segments, in the writer's
        -- transaction: the ids of the users whose memberships changed, or,
        -- for a statement over more than 10,000 rows, the ids of the
        -- segments it changed (one row for a million-user fill). A reader
        -- takes what committed since its last look, by transaction id and
        -- snapshot, and fetches those users or segments again in the same
        -- snapshot. Rows say only where to look, never what changed, so
        -- the order in which transactions committed does not matter.
        -- kind: 'u' a user's memberships, 's' a segment's memberships,
        -- 'c' the segments table, 'a' everything (memberships truncated).
        CREATE TABLE membership_changes (
            xid        xid8    NOT NULL DEFAULT pg_current_xact_id(),
            kind       "char"  NOT NULL CHECK (kind IN ('u', 's', 'c', 'a')),
            user_id    user_id CHECK ((kind = 'u') = (user_id IS NOT NULL)),
            segment_id bigint  CHECK ((kind = 's') = (segment_id IS NOT NULL))
        );
        CREATE INDEX membership_changes_xid_idx ON membership_changes (xid);

        CREATE FUNCTION note_membership_changes() RETURNS trigger
            LANGUAGE plpgsql AS $note$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                INSERT INTO membership_changes (kind) VALUES ('a');
            ELSIF TG_OP = 'UPDATE' THEN
                IF (SELECT count(*) FROM (SELECT FROM changed LIMIT 5001) few) <= 5000 THEN
                    INSERT INTO membership_changes (kind, user_id)
                    SELECT 'u', user_id FROM changed UNION SELECT 'u', user_id FROM changed_before;
                ELSE
                    INSERT INTO membership_changes (kind, segment_id)
                    SELECT 's', segment_id FROM changed UNION SELECT 's', segment_id FROM changed_before;
                END IF;
            ELSIF (SELECT count(*) FROM (SELECT FROM changed LIMIT 10001) few) <= 10000 THEN
                INSERT INTO membership_changes (kind, user_id) SELECT DISTINCT 'u', user_id FROM changed;
            ELSE
                INSERT INTO membership_changes (kind, segment_id) SELECT DISTINCT 's', segment_id FROM changed;
            END IF;
            RETURN NULL;
        END
        $note$;
        CREATE TRIGGER memberships_inserted_noted AFTER INSERT ON memberships
            REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_membership_changes();
        CREATE TRIGGER memberships_deleted_noted AFTER DELETE ON memberships
            REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION note_membership_changes();
        CREATE TRIGGER memberships_updated_noted AFTER UPDATE ON memberships
            REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION note_membership_changes();
        CREATE TRIGGER memberships_truncated_noted AFTER TRUNCATE ON memberships
            FOR EACH STATEMENT EXECUTE FUNCTION note_membership_changes();

        -- Any change of segments: a reader loads the live slugs again (a
        -- few thousand rows at most).
        CREATE FUNCTION note_segment_changes() RETURNS trigger
            LANGUAGE plpgsql AS $note$
        BEGIN
            INSERT INTO membership_changes (kind) VALUES ('c');
            RETURN NULL;
        END
        $note$;
        CREATE TRIGGER segments_changed_noted AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segments
            FOR EACH STATEMENT EXECUTE FUNCTION note_segment_changes();

        INSERT INTO schema_migrations (version, description) VALUES (6, 'change notes for membership read models');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 7) THEN
        -- Locks of single segments, in PostgreSQL's lock table rather than on
        -- the segments' rows (a row lock per call would write the one heap
        -- page that holds every segment). Whoever adds a user to a segment by
        -- hand holds the segment's lock shared; whoever changes who is in it
        -- wholesale (deletion, a new percentage) holds it exclusively. The key
        -- is (1, the id folded into 31 bits): a collision only makes two
        -- segments wait for each other.
        CREATE FUNCTION segment_lock_key(segment_id bigint) RETURNS integer
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            RETURN (segment_id % 2147483647)::integer;

        -- The live segments among `slugs`, locked (shared or exclusively) in
        -- id order, as they are once the locks are held: a segment deleted
        -- while this waited is left out, and so is one created meanwhile
        -- (it was not locked).
        CREATE FUNCTION lock_live_segments(slugs text[], exclusive boolean) RETURNS SETOF segments
            LANGUAGE plpgsql AS $fn$
        DECLARE
            ids bigint[];
            id bigint;
        BEGIN
            SELECT coalesce(array_agg(s.id ORDER BY s.id), '{}') INTO ids
            FROM segments s WHERE s.slug = ANY(slugs) AND s.deleted_at IS NULL;
            FOREACH id IN ARRAY ids LOOP
                IF exclusive THEN
                    PERFORM pg_advisory_xact_lock(1, segment_lock_key(id));
                ELSE
                    PERFORM pg_advisory_xact_lock_shared(1, segment_lock_key(id));
                END IF;
            END LOOP;
            RETURN QUERY SELECT * FROM segments s WHERE s.id = ANY(ids) AND s.deleted_at IS NULL;
        END
        $fn$;

        -- A user's memberships changed by hand, all or nothing, in one call
        -- (one round trip): the additions `add_slugs` (deadlines in
        -- `add_expires_at`, NULL for none) and the removals `remove_slugs`,
        -- at `p_now`. The caller has checked the shapes: no slug twice, none in
        -- both lists. Returns nothing when the change is made; otherwise
        -- changes nothing and returns every problem: ('no_user', NULL), or
        -- ('missing_add' | 'missing_remove' | 'already_in', the 0-based
        -- position in its list).
        --
        -- Locks only what the change needs: the user's row (FOR NO KEY
        -- UPDATE: two changes of one user take turns), the named segments
        -- shared (none is deleted or refilled meanwhile), and the membership
        -- rows it deletes. Another writer can still add the same membership
        -- between the check and the insert (a bulk call, a fill): then the
        -- call fails as a serialization failure, the caller retries, and the
        -- retry reports the user as already in the segment.
        --
        -- Memberships of the named segments that expired and that no job has
        -- ended yet end first, at their deadlines (reason ttl; an automatic
        -- one opts the user out, as the expiry job does); then the removals
        -- (reason manual, each an opt-out of automatic assignment); then the
        -- additions (reason manual). History ids follow that order.
        CREATE FUNCTION change_user_segments(p_user user_id, add_slugs text[], add_expires_at timestamptz[],
                                             remove_slugs text[], p_now timestamptz)
            RETURNS TABLE (problem text, item integer)
            LANGUAGE plpgsql AS $fn$
        DECLARE
            wanted text[] := add_slugs || remove_slugs;
            adds integer := cardinality(add_slugs);
            locked bigint[];
            seg_id bigint;
            ids bigint[];      -- per wanted slug: its live segment, NULL if none
            states "char"[];   -- per wanted slug: the user's membership: n none, a active, e expired
            blocked boolean := false;
            i integer;
        BEGIN
            PERFORM FROM users WHERE id = p_user FOR NO KEY UPDATE;
            IF NOT FOUND THEN
                RETURN QUERY VALUES ('no_user', NULL::integer);
                RETURN;
            END IF;
            SELECT array_agg(s.id ORDER BY s.id) INTO locked
            FROM segments s WHERE s.slug = ANY(wanted) AND s.deleted_at IS NULL;
            FOREACH seg_id IN ARRAY coalesce(locked, '{}') LOOP
                PERFORM pg_advisory_xact_lock_shared(1, segment_lock_key(seg_id));
            END LOOP;
            -- The segments as they are now that they are held (one deleted
            -- meanwhile is missing), and the user's memberships of them.
            SELECT array_agg(s.id ORDER BY w.i),
                   array_agg(CASE WHEN m.segment_id IS NULL THEN 'n'
                                  WHEN m.expires_at <= p_now THEN 'e' ELSE 'a' END::"char" ORDER BY w.i)
            INTO ids, states
            FROM unnest(wanted) WITH ORDINALITY AS w(slug, i)
            LEFT JOIN segments s ON s.id = ANY(locked) AND s.slug = w.slug AND s.deleted_at IS NULL
            LEFT JOIN memberships m ON m.user_id = p_user AND m.segment_id = s.id;

            FOR i IN 1 .. cardinality(wanted) LOOP
                IF ids[i] IS NULL THEN
                    problem := CASE WHEN i <= adds THEN 'missing_add' ELSE 'missing_remove' END;
                    item := CASE WHEN i <= adds THEN i - 1 ELSE i - adds - 1 END;
                    blocked := true;
                    RETURN NEXT;
                ELSIF i <= adds AND states[i] = 'a' THEN
                    problem := 'already_in';
                    item := i - 1;
                    blocked := true;
                    RETURN NEXT;
                END IF;
            END LOOP;
            IF blocked THEN
                RETURN;
            END IF;

            IF 'e' = ANY(states) THEN
                WITH ended AS (
                    DELETE FROM memberships m
                    WHERE m.user_id = p_user AND m.segment_id = ANY(ids) AND m.expires_at <= p_now
                    RETURNING m.segment_id, m.expires_at, m.auto),
                opted_out AS (
                    INSERT INTO auto_opt_outs (segment_id, user_id, reason, at)
                    SELECT e.segment_id, p_user, 'ttl', p_now FROM ended e WHERE e.auto ON CONFLICT DO NOTHING)
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                SELECT p_user, e.segment_id, w.slug, 'remove', 'ttl', e.expires_at
                FROM ended e JOIN unnest(ids, wanted) AS w(id, slug) ON w.id = e.segment_id
                ORDER BY e.expires_at, e.segment_id;
            END IF;

            IF 'a' = ANY(states[adds + 1 :]) THEN
                WITH removed AS (
                    DELETE FROM memberships m
                    WHERE m.user_id = p_user AND m.segment_id = ANY(ids[adds + 1 :]) RETURNING m.segment_id),
                opted_out AS (
                    INSERT INTO auto_opt_outs (segment_id, user_id, reason, at)
                    SELECT r.segment_id, p_user, 'manual', p_now FROM removed r ON CONFLICT DO NOTHING)
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                SELECT p_user, r.segment_id, w.slug, 'remove', 'manual', p_now
                FROM removed r JOIN unnest(ids, wanted) WITH ORDINALITY AS w(id, slug, i) ON w.id = r.segment_id
                ORDER BY w.i;
            END IF;

            IF adds > 0 THEN
                WITH inserted AS (
                    INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto)
                    SELECT p_user, x.id, p_now, x.expires_at, false
                    FROM unnest(ids[: adds], add_expires_at) AS x(id, expires_at)
                    ON CONFLICT (user_id, segment_id) DO NOTHING RETURNING segment_id)
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                SELECT p_user, ins.segment_id, w.slug, 'add', 'manual', p_now
                FROM inserted ins JOIN unnest(ids, wanted) WITH ORDINALITY AS w(id, slug, i) ON w.id = ins.segment_id
                ORDER BY w.i;
                GET DIAGNOSTICS i = ROW_COUNT;
                IF i < adds THEN
                    RAISE EXCEPTION 'a membership of user % was added by another transaction meanwhile', p_user
                        USING ERRCODE = 'serialization_failure';
                END IF;
            END IF;
        END
        $fn$;

        INSERT INTO schema_migrations (version, description) VALUES (7, 'single-user changes in one call, segment locks');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 8) THEN
        -- Idempotency keys (docs/behaviour.md#idempotency-keys): the outcome
        -- of the first call with a key, written in the transaction of its
        -- work, answered again to every repeat. A call claims its key by
        -- inserting the row without an outcome, as the first statement of
        -- its transaction (a concurrent call with the key waits on the
        -- primary key until that transaction ends), and sets the outcome
        -- just before it commits: committed rows always have one.
        -- scope: whose key it is, '' until calls are authenticated.
        -- fingerprint: SHA-256 of the method and the request.
        -- code, message, details: the gRPC status and its
        -- grpc-status-details-bin; response: the serialized response.
        CREATE TABLE idempotency_keys (
            scope       text        COLLATE "C" NOT NULL,
            key         text        COLLATE "C" NOT NULL CHECK (key ~ '^[ -~]{1,128}$'),
            fingerprint bytea       NOT NULL,
            created_at  timestamptz NOT NULL,
            code        integer,
            message     text,
            details     bytea,
            response    bytea,
            PRIMARY KEY (scope, key),
            CHECK ((code IS NULL) = (message IS NULL) AND (code IS NULL) = (details IS NULL)
                   AND (code IS NULL) = (response IS NULL))
        ) WITH (fillfactor = 90);  -- room for the outcome's update on the same page
        -- The cleanup job deletes the oldest first.
        CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

        INSERT INTO schema_migrations (version, description) VALUES (8, 'idempotency keys');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 9) THEN
        -- Changes of a whole segment done in chunks of users, each chunk a
        -- transaction of its own, so that a fill of millions of users, a
        -- lowered percentage or the deletion of a big segment never holds
        -- other writers for long (docs/writes.md, "Changes of a whole
        -- segment"). One row per change; at most one unfinished per segment.
        -- kind: 'assign' (a new or raised percentage: from_hundredths is the
        -- percentage before), 'unassign' (a lowered one), 'delete' (the
        -- memberships of a deleted segment end).
        -- at: the time of the change; every event of the task carries it.
        -- last_user: the last user the task looks at, fixed by its first
        -- chunk (NULL before): users created later are evaluated by their own
        -- transactions, so a stream of new ids never keeps a task going.
        -- after_user: the users up to this id (byte order, '' for none) are
        -- done. count: memberships added or ended so far.
        -- heartbeat_at: when a chunk last ran; a task whose heartbeat is
        -- old was left by a stopped instance and is resumed by another.
        CREATE TYPE segment_task_kind AS ENUM ('assign', 'unassign', 'delete');
        CREATE TABLE segment_tasks (
            id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            segment_id      bigint            NOT NULL REFERENCES segments (id),
            kind            segment_task_kind NOT NULL,
            from_hundredths integer           NOT NULL CHECK (from_hundredths BETWEEN 0 AND 10000),
            at              timestamptz       NOT NULL,
            last_user       text COLLATE "C",
            after_user      text COLLATE "C"  NOT NULL DEFAULT '',
            count           bigint            NOT NULL DEFAULT 0,
            heartbeat_at    timestamptz       NOT NULL,
            finished_at     timestamptz
        );
        CREATE UNIQUE INDEX segment_tasks_unfinished_key ON segment_tasks (segment_id) WHERE finished_at IS NULL;

        -- Memberships of deleted segments are no one's concern: readers drop
        -- a segment with everything in it when it leaves the catalog, and
        -- fetch only live segments' rows. So the rows a deletion ends,
        -- chunk by chunk, are not noted: a note per user would make every
        -- read model fetch 2,000 users again per chunk for nothing.
        CREATE OR REPLACE FUNCTION note_membership_changes() RETURNS trigger
            LANGUAGE plpgsql AS $note$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                INSERT INTO membership_changes (kind) VALUES ('a');
            ELSIF TG_OP = 'UPDATE' THEN
                IF (SELECT count(*) FROM (SELECT FROM changed LIMIT 5001) few) <= 5000 THEN
                    INSERT INTO membership_changes (kind, user_id)
                    SELECT 'u', user_id FROM changed UNION SELECT 'u', user_id FROM changed_before;
                ELSE
                    INSERT INTO membership_changes (kind, segment_id)
                    SELECT 's', segment_id FROM changed UNION SELECT 's', segment_id FROM changed_before;
                END IF;
            ELSIF (SELECT count(*) FROM (SELECT FROM changed LIMIT 10001) few) <= 10000 THEN
                INSERT INTO membership_changes (kind, user_id) SELECT DISTINCT 'u', c.user_id FROM changed c
                WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = c.segment_id AND s.deleted_at IS NOT NULL);
            ELSE
                INSERT INTO membership_changes (kind, segment_id) SELECT DISTINCT 's', c.segment_id FROM changed c
                WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = c.segment_id AND s.deleted_at IS NOT NULL);
            END IF;
            RETURN NULL;
        END
        $note$;

        INSERT INTO schema_migrations (version, description) VALUES (9, 'segment tasks');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 10) THEN
        -- Range notes: a statement that adds many memberships of one segment
        -- to users close together in id order (a chunk of a fill: 500
        -- consecutive users) notes the range, kind 'r': segment_id, and the
        -- users from user_id to last_user_id. A reader fetches that
        -- segment's rows in the range, one index range scan, instead of
        -- every membership of each of those users, one index lookup each
        -- (bench/README.md: with a note per user, read models fell seconds
        -- behind a 1M fill).
        -- Only additions are noted so: a reader puts the rows it finds, and
        -- every row that leaves is noted by the statement that deletes it.
        -- A range counts as close when the segment has at most twice as
        -- many rows in it as the statement added; sparse additions (user
        -- events of random ids) are noted per user as before.
        ALTER TABLE membership_changes ADD COLUMN last_user_id user_id;
        ALTER TABLE membership_changes
            DROP CONSTRAINT membership_changes_kind_check,
            DROP CONSTRAINT membership_changes_check,
            DROP CONSTRAINT membership_changes_check1,
            ADD CONSTRAINT membership_changes_kind_check CHECK (kind IN ('u', 's', 'r', 'c', 'a')),
            ADD CONSTRAINT membership_changes_user_check CHECK ((kind IN ('u', 'r')) = (user_id IS NOT NULL)),
            ADD CONSTRAINT membership_changes_segment_check CHECK ((kind IN ('s', 'r')) = (segment_id IS NOT NULL)),
            ADD CONSTRAINT membership_changes_range_check CHECK ((kind = 'r') = (last_user_id IS NOT NULL));

        CREATE OR REPLACE FUNCTION note_membership_changes() RETURNS trigger
            LANGUAGE plpgsql AS $note$
        DECLARE
            ranged bigint[] := '{}';  -- segments whose additions were noted as ranges
            rows_left bigint;         -- rows of the other segments (up to 10,001)
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                INSERT INTO membership_changes (kind) VALUES ('a');
                RETURN NULL;
            ELSIF TG_OP = 'UPDATE' THEN
                IF (SELECT count(*) FROM (SELECT FROM changed LIMIT 5001) few) <= 5000 THEN
                    INSERT INTO membership_changes (kind, user_id)
                    SELECT 'u', user_id FROM changed UNION SELECT 'u', user_id FROM changed_before;
                ELSE
                    INSERT INTO membership_changes (kind, segment_id)
                    SELECT 's', segment_id FROM changed UNION SELECT 's', segment_id FROM changed_before;
                END IF;
                RETURN NULL;
            END IF;
            -- Counted once (up to 10,001): a one-row change pays for no more
            -- than it did before range notes.
            rows_left := (SELECT count(*) FROM (SELECT FROM changed LIMIT 10001) few);
            IF TG_OP = 'INSERT' AND rows_left > 64 THEN
                WITH runs AS (
                    SELECT segment_id, min(user_id) AS lo, max(user_id) AS hi, count(*) AS n
                    FROM changed GROUP BY segment_id HAVING count(*) > 64),
                close_runs AS (
                    SELECT r.* FROM runs r
                    WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = r.segment_id AND s.deleted_at IS NOT NULL)
                    AND (SELECT count(*) FROM (SELECT FROM memberships m WHERE m.segment_id = r.segment_id
                         AND m.user_id >= r.lo AND m.user_id <= r.hi LIMIT 2 * r.n + 1) x) <= 2 * r.n),
                noted AS (
                    INSERT INTO membership_changes (kind, segment_id, user_id, last_user_id)
                    SELECT 'r', segment_id, lo, hi FROM close_runs RETURNING segment_id)
                SELECT coalesce(array_agg(segment_id), '{}') INTO ranged FROM noted;
                IF ranged <> '{}' THEN
                    rows_left := (SELECT count(*) FROM (SELECT FROM changed WHERE segment_id <> ALL (ranged) LIMIT 10001) few);
                END IF;
            END IF;
            IF rows_left <= 10000 THEN
                INSERT INTO membership_changes (kind, user_id) SELECT DISTINCT 'u', c.user_id FROM changed c
                WHERE c.segment_id <> ALL (ranged)
                AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = c.segment_id AND s.deleted_at IS NOT NULL);
            ELSE
                INSERT INTO membership_changes (kind, segment_id) SELECT DISTINCT 's', c.segment_id FROM changed c
                WHERE c.segment_id <> ALL (ranged)
                AND NOT EXISTS (SELECT 1 FROM segments s WHERE s.id = c.segment_id AND s.deleted_at IS NOT NULL);
            END IF;
            RETURN NULL;
        END
        $note$;

        -- A chunk of a fill looks at the active users of its range of ids:
        -- from this index alone (an index-only scan), instead of visiting a
        -- heap page per user, where users created over time in random id
        -- order lie (68 -> 21 ms for 5,000 users at 1M, bench/README.md).
        CREATE INDEX users_active_id_idx ON users (id) WHERE state = 'active';

        INSERT INTO schema_migrations (version, description) VALUES (10, 'range notes for read models, active users by id');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 11) THEN
        -- The notes of a statement skip the rows of deleted segments after
        -- looking each segment up once, not once per row: the planner knows
        -- nothing of a transition table, and compared every row changed with
        -- every deleted segment (5,743 rows x 60 segments: 75 ms), a cost
        -- that grew with each segment ever deleted. Otherwise as in 10.
        CREATE OR REPLACE FUNCTION note_membership_changes() RETURNS trigger
            LANGUAGE plpgsql AS $note$
        DECLARE
            skipped bigint[];  -- deleted segments, then also those noted as ranges
            rows_left bigint;  -- rows of the other segments (up to 10,001)
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                INSERT INTO membership_changes (kind) VALUES ('a');
                RETURN NULL;
            ELSIF TG_OP = 'UPDATE' THEN
                IF (SELECT count(*) FROM (SELECT FROM changed LIMIT 5001) few) <= 5000 THEN
                    INSERT INTO membership_changes (kind, user_id)
                    SELECT 'u', user_id FROM changed UNION SELECT 'u', user_id FROM changed_before;
                ELSE
                    INSERT INTO membership_changes (kind, segment_id)
                    SELECT 's', segment_id FROM changed UNION SELECT 's', segment_id FROM changed_before;
                END IF;
                RETURN NULL;
            END IF;
            skipped := ARRAY(SELECT s.id FROM segments s WHERE s.deleted_at IS NOT NULL
                             AND s.id = ANY (ARRAY(SELECT DISTINCT segment_id FROM changed)));
            rows_left := (SELECT count(*) FROM (SELECT FROM changed WHERE segment_id <> ALL (skipped) LIMIT 10001) few);
            IF TG_OP = 'INSERT' AND rows_left > 64 THEN
                WITH runs AS (
                    SELECT segment_id, min(user_id) AS lo, max(user_id) AS hi, count(*) AS n
                    FROM changed WHERE segment_id <> ALL (skipped) GROUP BY segment_id HAVING count(*) > 64),
                close_runs AS (
                    SELECT r.* FROM runs r
                    WHERE (SELECT count(*) FROM (SELECT FROM memberships m WHERE m.segment_id = r.segment_id
                           AND m.user_id >= r.lo AND m.user_id <= r.hi LIMIT 2 * r.n + 1) x) <= 2 * r.n),
                noted AS (
                    INSERT INTO membership_changes (kind, segment_id, user_id, last_user_id)
                    SELECT 'r', segment_id, lo, hi FROM close_runs RETURNING segment_id)
                SELECT skipped || coalesce(array_agg(segment_id), '{}') INTO skipped FROM noted;
                rows_left := (SELECT count(*) FROM (SELECT FROM changed WHERE segment_id <> ALL (skipped) LIMIT 10001) few);
            END IF;
            IF rows_left <= 10000 THEN
                INSERT INTO membership_changes (kind, user_id) SELECT DISTINCT 'u', c.user_id FROM changed c
                WHERE c.segment_id <> ALL (skipped);
            ELSE
                INSERT INTO membership_changes (kind, segment_id) SELECT DISTINCT 's', c.segment_id FROM changed c
                WHERE c.segment_id <> ALL (skipped);
            END IF;
            RETURN NULL;
        END
        $note$;

        INSERT INTO schema_migrations (version, description) VALUES (11, 'notes look deleted segments up once');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 12) THEN
        -- A keyed call that changes a whole segment (a fill, a new
        -- percentage, a deletion) commits its key with the publish of the
        -- change, *pending* on the task (task_id, no outcome yet), then runs
        -- the task's chunks like any other call and stores its answer when
        -- they are done. A repeat that finds the key pending finishes the
        -- task itself and answers from it (docs/behaviour.md#idempotency-keys).
        -- No foreign key: tasks are never deleted, and the key's insert
        -- would lock the task's row, which every chunk locks.
        ALTER TABLE idempotency_keys ADD COLUMN task_id bigint;
        -- The percentage a task changes to (its segment's as published):
        -- what a repeated keyed create answers.
        ALTER TABLE segment_tasks ADD COLUMN to_hundredths integer CHECK (to_hundredths BETWEEN 0 AND 10000);

        INSERT INTO schema_migrations (version, description) VALUES (12, 'keyed calls pending on a segment task');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 13) THEN
        -- Puts p_user, active, in every live automatic segment whose
        -- percentage covers their bucket and whose include and exclude
        -- options they pass, in creation order (a segment may include one
        -- this same evaluation just added), skipping those in p_member_of
        -- (their active memberships, which the options look at) and in
        -- p_skip (their opt-outs); each with an `add` (auto_percent) and the
        -- segment's automatic TTL. The rule of docs/bucketing.md, as
        -- AssignUsersAutomatically applies it to the users of a batch of
        -- user events; tests hold the two to the same answers. The caller
        -- holds the automatic-assignment lock shared and the user. Returns
        -- how many segments the user entered.
        CREATE FUNCTION enter_automatic_segments(p_user user_id, p_now timestamptz, p_member_of bigint[],
                                                 p_skip bigint[]) RETURNS integer
            LANGUAGE plpgsql AS $fn$
        DECLARE
            s record;
            member_of bigint[] := p_member_of;
            entered bigint[] := '{}';
            slugs text[] := '{}';
            expiries timestamptz[] := '{}';
        BEGIN
            FOR s IN SELECT id, slug, salt, round(percent_to_fill * 100)::int AS hundredths,
                            auto_include, auto_exclude, auto_ttl_seconds
                     FROM segments WHERE deleted_at IS NULL AND percent_to_fill > 0 ORDER BY id LOOP
                CONTINUE WHEN s.id = ANY (member_of) OR s.id = ANY (p_skip);
                CONTINUE WHEN segment_bucket(s.salt, p_user) >= s.hundredths;
                CONTINUE WHEN NOT s.auto_include <@ member_of OR s.auto_exclude && member_of;
                member_of := member_of || s.id;
                entered := entered || s.id;
                slugs := slugs || s.slug;
                expiries := expiries || (p_now + make_interval(secs => s.auto_ttl_seconds));
            END LOOP;
            IF cardinality(entered) > 0 THEN
                INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto)
                SELECT p_user, e.id, p_now, e.expires_at, true FROM unnest(entered, expiries) AS e(id, expires_at);
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                SELECT p_user, e.id, e.slug, 'add', 'auto_percent', p_now
                FROM unnest(entered, slugs) WITH ORDINALITY AS e(id, slug, n) ORDER BY e.n;
            END IF;
            RETURN cardinality(entered);
        END
        $fn$;

        -- A user created by CreateUser, all in one call (one round trip,
        -- docs/writes.md): holds the automatic-assignment lock shared (as
        -- every evaluation of a user does: a fill's first chunk waits for
        -- it), inserts the user, active, and puts them in their automatic
        -- segments. A new user has neither memberships nor opt-outs (a
        -- deletion ends and forgets both). Returns how many segments the
        -- user entered, or NULL when a user with the id exists (nothing
        -- changed).
        CREATE FUNCTION create_user(p_user user_id, p_now timestamptz) RETURNS integer
            LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(hashtext('segments.auto_assignment'));
            INSERT INTO users (id, state, created_at, updated_at) VALUES (p_user, 'active', p_now, p_now)
            ON CONFLICT (id) DO NOTHING;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            RETURN enter_automatic_segments(p_user, p_now, '{}', '{}');
        END
        $fn$;

        -- A user's state set by UpdateUser, in one call: holds the lock
        -- shared and the user's row (FOR UPDATE), sets the state, and a user
        -- who comes back is evaluated like a new one, with what they have:
        -- memberships that expired and no job has ended yet end first (`ttl`
        -- at their deadlines, in that order; an automatic one opts the user
        -- out), then the active ones and the opt-outs count. Leaving keeps
        -- memberships. Returns the segments entered (0 for the same state),
        -- or NULL for an unknown user (nothing changed).
        CREATE FUNCTION set_user_state(p_user user_id, p_state user_state, p_now timestamptz) RETURNS integer
            LANGUAGE plpgsql AS $fn$
        DECLARE
            current_state user_state;
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(hashtext('segments.auto_assignment'));
            SELECT state INTO current_state FROM users WHERE id = p_user FOR UPDATE;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            IF current_state = p_state THEN
                RETURN 0;
            END IF;
            UPDATE users SET state = p_state, updated_at = p_now WHERE id = p_user;
            IF p_state <> 'active' THEN
                RETURN 0;
            END IF;
            WITH e AS (DELETE FROM memberships WHERE user_id = p_user AND expires_at <= p_now
                       RETURNING segment_id, expires_at, auto),
            o AS (INSERT INTO auto_opt_outs (segment_id, user_id, reason, at)
                  SELECT e.segment_id, p_user, 'ttl', p_now FROM e WHERE e.auto ON CONFLICT DO NOTHING)
            INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
            SELECT p_user, e.segment_id, s.slug, 'remove', 'ttl', e.expires_at
            FROM e JOIN segments s ON s.id = e.segment_id ORDER BY e.expires_at, e.segment_id;
            RETURN enter_automatic_segments(
                p_user, p_now, ARRAY(SELECT segment_id FROM memberships WHERE user_id = p_user),
                ARRAY(SELECT segment_id FROM auto_opt_outs WHERE user_id = p_user));
        END
        $fn$;

        -- A user deleted by DeleteUser, in one call: holds the
        -- automatic-assignment lock shared and the user's row (FOR UPDATE: a
        -- fill's chunk that is adding the user finishes first, or skips
        -- them), ends every membership with a `remove` (user_deleted; ttl at
        -- its deadline for one that had expired), forgets the user's
        -- opt-outs and deletes the user. Returns the memberships that were
        -- active, or NULL for an unknown user (nothing changed).
        CREATE FUNCTION delete_user(p_user user_id, p_now timestamptz) RETURNS bigint
            LANGUAGE plpgsql AS $fn$
        DECLARE
            ended bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(hashtext('segments.auto_assignment'));
            PERFORM FROM users WHERE id = p_user FOR UPDATE;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            WITH e AS (DELETE FROM memberships WHERE user_id = p_user RETURNING segment_id, expires_at),
            h AS (INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                  SELECT p_user, e.segment_id, s.slug, 'remove',
                         CASE WHEN e.expires_at <= p_now THEN 'ttl' ELSE 'user_deleted' END::history_reason,
                         CASE WHEN e.expires_at <= p_now THEN e.expires_at ELSE p_now END
                  FROM e JOIN segments s ON s.id = e.segment_id RETURNING reason)
            SELECT count(*) FILTER (WHERE reason <> 'ttl') INTO ended FROM h;
            DELETE FROM auto_opt_outs WHERE user_id = p_user;
            DELETE FROM users WHERE id = p_user;
            RETURN ended;
        END
        $fn$;

        INSERT INTO schema_migrations (version, description) VALUES (13, 'CreateUser, UpdateUser and DeleteUser in one call');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 14) THEN
        -- Who made each change (docs/auth.md#who-made-each-change): the
        -- token subject of the call that wrote a history row, or 'system'
        -- (jobs, user events, automatic assignment). The writers set the
        -- transaction's segments.actor (with BEGIN, or through the *_as
        -- functions below for the one-call writes); every INSERT INTO
        -- history takes it from the default, so no statement names it.
        -- Rows written before stay NULL, read as 'unknown'. The default is
        -- set after the column is added, so they are not filled with it.
        ALTER TABLE history ADD COLUMN actor text;
        ALTER TABLE history ALTER COLUMN actor
            SET DEFAULT coalesce(nullif(current_setting('segments.actor', true), ''), 'system');
        -- The actor of a segment task (NULL: the system), whose chunks may
        -- run in other calls or after a restart: a deletion's removals are
        -- its actor's.
        ALTER TABLE segment_tasks ADD COLUMN actor text;

        -- change_user_segments and delete_user for an actor (NULL: the
        -- system), still one statement each.
        CREATE FUNCTION change_user_segments_as(p_actor text, p_user user_id, add_slugs text[],
                                                add_expires_at timestamptz[], remove_slugs text[], p_now timestamptz)
            RETURNS TABLE (problem text, item integer)
            LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM set_config('segments.actor', coalesce(p_actor, ''), true);
            RETURN QUERY SELECT c.problem, c.item
                         FROM change_user_segments(p_user, add_slugs, add_expires_at, remove_slugs, p_now) c;
        END
        $fn$;
        CREATE FUNCTION delete_user_as(p_actor text, p_user user_id, p_now timestamptz) RETURNS bigint
            LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM set_config('segments.actor', coalesce(p_actor, ''), true);
            RETURN delete_user(p_user, p_now);
        END
        $fn$;

        INSERT INTO schema_migrations (version, description) VALUES (14, 'history records who made each change');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 15) THEN
        -- Time travel (docs/time-travel.md): who was in a segment at any
        -- instant, replayed from the history alone. A TTL is set only when a
        -- membership is added, so the `add` event carries its deadline; with
        -- it, the last event of a (user, segment) at or before t says whether
        -- the membership held at t. Adds written before keep NULL unless the
        -- membership is still held (filled in below); the ones that ended by
        -- TTL have their `remove` at the deadline already.
        -- (IF NOT EXISTS: a large table may have had both made by hand first,
        -- the index CONCURRENTLY; docs/time-travel.md.)
        ALTER TABLE history ADD COLUMN IF NOT EXISTS expires_at timestamptz;
        UPDATE history h SET expires_at = m.expires_at
        FROM memberships m
        WHERE m.expires_at IS NOT NULL AND h.user_id = m.user_id AND h.segment_id = m.segment_id
          AND h.operation = 'add' AND h.at = m.added_at;
        -- Every time-travel question reads this index only (no heap): the
        -- last event per user of a segment (members at t, a page at a time,
        -- in user order), and the counts per step (size over time). Its cost
        -- is in docs/time-travel.md.
        CREATE INDEX IF NOT EXISTS history_segment_member_idx ON history (segment_id, user_id, at, id)
            INCLUDE (operation, reason, expires_at);

        -- The writers of `add` events record the deadline (as in 7 and 13
        -- otherwise).
        CREATE OR REPLACE FUNCTION change_user_segments(p_user user_id, add_slugs text[], add_expires_at timestamptz[],
                                             remove_slugs text[], p_now timestamptz)
            RETURNS TABLE (problem text, item integer)
            LANGUAGE plpgsql AS $fn$
        DECLARE
            wanted text[] := add_slugs || remove_slugs;
            adds integer := cardinality(add_slugs);
            locked bigint[];
            seg_id bigint;
            ids bigint[];      -- per wanted slug: its live segment, NULL if none
            states "char"[];   -- per wanted slug: the user's membership: n none, a active, e expired
            blocked boolean := false;
            i integer;
        BEGIN
            PERFORM FROM users WHERE id = p_user FOR NO KEY UPDATE;
            IF NOT FOUND THEN
                RETURN QUERY VALUES ('no_user', NULL::integer);
                RETURN;
            END IF;
            SELECT array_agg(s.id ORDER BY s.id) INTO locked
            FROM segments s WHERE s.slug = ANY(wanted) AND s.deleted_at IS NULL;
            FOREACH seg_id IN ARRAY coalesce(locked, '{}') LOOP
                PERFORM pg_advisory_xact_lock_shared(1, segment_lock_key(seg_id));
            END LOOP;
            -- The segments as they are now that they are held (one deleted
            -- meanwhile is missing), and the user's memberships of them.
            SELECT array_agg(s.id ORDER BY w.i),
                   array_agg(CASE WHEN m.segment_id IS NULL THEN 'n'
                                  WHEN m.expires_at <= p_now THEN 'e' ELSE 'a' END::"char" ORDER BY w.i)
            INTO ids, states
            FROM unnest(wanted) WITH ORDINALITY AS w(slug, i)
            LEFT JOIN segments s ON s.id = ANY(locked) AND s.slug = w.slug AND s.deleted_at IS NULL
            LEFT JOIN memberships m ON m.user_id = p_user AND m.segment_id = s.id;

            FOR i IN 1 .. cardinality(wanted) LOOP
                IF ids[i] IS NULL THEN
                    problem := CASE WHEN i <= adds THEN 'missing_add' ELSE 'missing_remove' END;
                    item := CASE WHEN i <= adds THEN i - 1 ELSE i - adds - 1 END;
                    blocked := true;
                    RETURN NEXT;
                ELSIF i <= adds AND states[i] = 'a' THEN
                    problem := 'already_in';
                    item := i - 1;
                    blocked := true;
                    RETURN NEXT;
                END IF;
            END LOOP;
            IF blocked THEN
                RETURN;
            END IF;

            IF 'e' = ANY(states) THEN
                WITH ended AS (
                    DELETE FROM memberships m
                    WHERE m.user_id = p_user AND m.segment_id = ANY(ids) AND m.expires_at <= p_now
                    RETURNING m.segment_id, m.expires_at, m.auto),
                opted_out AS (
                    INSERT INTO auto_opt_outs (segment_id, user_id, reason, at)
                    SELECT e.segment_id, p_user, 'ttl', p_now FROM ended e WHERE e.auto ON CONFLICT DO NOTHING)
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                SELECT p_user, e.segment_id, w.slug, 'remove', 'ttl', e.expires_at
                FROM ended e JOIN unnest(ids, wanted) AS w(id, slug) ON w.id = e.segment_id
                ORDER BY e.expires_at, e.segment_id;
            END IF;

            IF 'a' = ANY(states[adds + 1 :]) THEN
                WITH removed AS (
                    DELETE FROM memberships m
                    WHERE m.user_id = p_user AND m.segment_id = ANY(ids[adds + 1 :]) RETURNING m.segment_id),
                opted_out AS (
                    INSERT INTO auto_opt_outs (segment_id, user_id, reason, at)
                    SELECT r.segment_id, p_user, 'manual', p_now FROM removed r ON CONFLICT DO NOTHING)
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at)
                SELECT p_user, r.segment_id, w.slug, 'remove', 'manual', p_now
                FROM removed r JOIN unnest(ids, wanted) WITH ORDINALITY AS w(id, slug, i) ON w.id = r.segment_id
                ORDER BY w.i;
            END IF;

            IF adds > 0 THEN
                WITH inserted AS (
                    INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto)
                    SELECT p_user, x.id, p_now, x.expires_at, false
                    FROM unnest(ids[: adds], add_expires_at) AS x(id, expires_at)
                    ON CONFLICT (user_id, segment_id) DO NOTHING RETURNING segment_id, expires_at)
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at)
                SELECT p_user, ins.segment_id, w.slug, 'add', 'manual', p_now, ins.expires_at
                FROM inserted ins JOIN unnest(ids, wanted) WITH ORDINALITY AS w(id, slug, i) ON w.id = ins.segment_id
                ORDER BY w.i;
                GET DIAGNOSTICS i = ROW_COUNT;
                IF i < adds THEN
                    RAISE EXCEPTION 'a membership of user % was added by another transaction meanwhile', p_user
                        USING ERRCODE = 'serialization_failure';
                END IF;
            END IF;
        END
        $fn$;

        CREATE OR REPLACE FUNCTION enter_automatic_segments(p_user user_id, p_now timestamptz, p_member_of bigint[],
                                                 p_skip bigint[]) RETURNS integer
            LANGUAGE plpgsql AS $fn$
        DECLARE
            s record;
            member_of bigint[] := p_member_of;
            entered bigint[] := '{}';
            slugs text[] := '{}';
            expiries timestamptz[] := '{}';
        BEGIN
            FOR s IN SELECT id, slug, salt, round(percent_to_fill * 100)::int AS hundredths,
                            auto_include, auto_exclude, auto_ttl_seconds
                     FROM segments WHERE deleted_at IS NULL AND percent_to_fill > 0 ORDER BY id LOOP
                CONTINUE WHEN s.id = ANY (member_of) OR s.id = ANY (p_skip);
                CONTINUE WHEN segment_bucket(s.salt, p_user) >= s.hundredths;
                CONTINUE WHEN NOT s.auto_include <@ member_of OR s.auto_exclude && member_of;
                member_of := member_of || s.id;
                entered := entered || s.id;
                slugs := slugs || s.slug;
                expiries := expiries || (p_now + make_interval(secs => s.auto_ttl_seconds));
            END LOOP;
            IF cardinality(entered) > 0 THEN
                INSERT INTO memberships (user_id, segment_id, added_at, expires_at, auto)
                SELECT p_user, e.id, p_now, e.expires_at, true FROM unnest(entered, expiries) AS e(id, expires_at);
                INSERT INTO history (user_id, segment_id, slug, operation, reason, at, expires_at)
                SELECT p_user, e.id, e.slug, 'add', 'auto_percent', p_now, e.expires_at
                FROM unnest(entered, slugs, expiries) WITH ORDINALITY AS e(id, slug, expires_at, n) ORDER BY e.n;
            END IF;
            RETURN cardinality(entered);
        END
        $fn$;

        INSERT INTO schema_migrations (version, description) VALUES (15, 'history keeps deadlines, time-travel index');
    END IF;

    IF NOT EXISTS (SELECT 1 FROM schema_migrations WHERE version = 16) THEN
        -- The bucketing functions IMMUTABLE, as a table distributed by user
        -- id needs them in statements that run on every shard (docs/scaling.md).
        -- decode(..., 'escape') takes the text's own bytes, UTF-8 in our
        -- UTF8 databases, with every backslash doubled so that none starts
        -- an escape: the bytes convert_to(..., 'UTF8') gave, so no bucket
        -- changes. Both are immutable, so the functions are still inlined.
        IF current_setting('server_encoding') <> 'UTF8' THEN
            RAISE EXCEPTION 'segments needs a UTF8 database, this one is %', current_setting('server_encoding');
        END IF;
        CREATE OR REPLACE FUNCTION segment_digest(salt text, user_id user_id) RETURNS bytea
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            RETURN sha256(decode(replace(salt || ':' || user_id::text, '\', '\\'), 'escape'));
        CREATE OR REPLACE FUNCTION segment_bucket(salt text, user_id user_id) RETURNS integer
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
            RETURN segment_bucket_of_digest(segment_digest(salt, user_id));

        INSERT INTO schema_migrations (version, description) VALUES (16, 'bucketing functions immutable');
    END IF;
END
$migrations$;
