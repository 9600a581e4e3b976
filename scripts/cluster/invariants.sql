-- The fault drill's invariants (scripts/cluster.sh drill), checked on the
-- primary once the load has stopped. The drill loads what its clients saw
-- into the schema drill first: expected (user_id, slug, held: the last
-- acknowledged change of each user and drill segment), expected_events
-- (user_id, slug, acked_adds, acked_removes) and mock_users (user_id, state:
-- the user service's users). One row per invariant: its violations and the
-- first of them.
WITH
drill_segments AS (
    SELECT id, slug FROM segments
    WHERE deleted_at IS NULL AND slug IN (SELECT slug FROM drill.expected)),
held AS (
    SELECT m.user_id::text AS user_id, s.slug
    FROM memberships m JOIN drill_segments s ON s.id = m.segment_id),
lost AS (
    SELECT e.user_id, e.slug, e.held
    FROM drill.expected e LEFT JOIN held h USING (user_id, slug)
    WHERE e.held <> (h.user_id IS NOT NULL)),
events AS (
    SELECT user_id::text AS user_id, segment_id, slug, operation, reason, at, expires_at,
           lag(operation) OVER w AS previous_operation,
           lag(expires_at) OVER w AS previous_expires_at
    FROM history
    WINDOW w AS (PARTITION BY user_id, segment_id ORDER BY at, id)),
-- The drill adds a segment only when the user surely does not hold it, so
-- every acknowledged add is one add event, and every add but a last one
-- still held has ended in one remove event (by hand or at its deadline); a
-- removal of a segment not held writes nothing.
event_counts AS (
    SELECT x.user_id, x.slug, x.acked_adds, x.acked_removes, e.held,
           count(ev.*) FILTER (WHERE ev.operation = 'add' AND ev.reason = 'manual') AS adds,
           count(ev.*) FILTER (WHERE ev.operation = 'remove' AND ev.reason = 'manual') AS manual_removes,
           count(ev.*) FILTER (WHERE ev.operation = 'remove') AS removes
    FROM drill.expected_events x
    JOIN drill.expected e USING (user_id, slug)
    JOIN drill_segments s ON s.slug = x.slug
    LEFT JOIN events ev ON ev.user_id = x.user_id AND ev.segment_id = s.id
    GROUP BY x.user_id, x.slug, x.acked_adds, x.acked_removes, e.held),
miscounted AS (
    SELECT * FROM event_counts
    WHERE adds <> acked_adds OR removes <> acked_adds - held::int OR manual_removes > acked_removes),
last_events AS (
    SELECT DISTINCT ON (user_id, segment_id) user_id::text AS user_id, segment_id, operation, expires_at
    FROM history ORDER BY user_id, segment_id, at DESC, id DESC),
replayed AS (
    SELECT user_id, segment_id, expires_at FROM last_events
    WHERE operation = 'add' AND (expires_at IS NULL OR expires_at > now())),
replay_mismatch AS (
    SELECT coalesce(r.user_id, m.user_id::text) AS user_id, coalesce(r.segment_id, m.segment_id) AS segment_id
    FROM replayed r FULL JOIN memberships m ON m.user_id::text = r.user_id AND m.segment_id = r.segment_id
    WHERE r.user_id IS NULL OR m.user_id IS NULL OR r.expires_at IS DISTINCT FROM m.expires_at),
duplicated AS (
    SELECT * FROM events WHERE operation = previous_operation),
ttl_off AS (
    SELECT * FROM events
    WHERE operation = 'remove' AND reason = 'ttl'
      AND (previous_operation IS DISTINCT FROM 'add' OR at IS DISTINCT FROM previous_expires_at)),
overdue AS (
    SELECT * FROM memberships WHERE expires_at <= now()),
replica_mismatch AS (
    SELECT coalesce(u.id::text, mu.user_id) AS user_id, u.state::text AS ours, mu.state AS theirs
    FROM users u FULL JOIN drill.mock_users mu ON mu.user_id = u.id::text
    WHERE u.id IS NULL OR mu.user_id IS NULL OR u.state::text <> mu.state)
SELECT 'acknowledged changes all kept (memberships = last acknowledged change)' AS invariant,
       (SELECT count(*) FROM lost) AS violations,
       (SELECT format('%s %s expected held=%s', user_id, slug, held) FROM lost LIMIT 1) AS first
UNION ALL
SELECT 'one add event per acknowledged add, one remove event per add ended',
       (SELECT count(*) FROM miscounted),
       (SELECT format('%s %s: %s adds for %s acknowledged, %s removes (%s by hand, %s acknowledged), held=%s',
                      user_id, slug, adds, acked_adds, removes, manual_removes, acked_removes, held)
        FROM miscounted LIMIT 1)
UNION ALL
SELECT 'history replayed = memberships (every user, every segment)',
       (SELECT count(*) FROM replay_mismatch),
       (SELECT format('%s segment %s', user_id, segment_id) FROM replay_mismatch LIMIT 1)
UNION ALL
SELECT 'no duplicated history event (never add after add, remove after remove)',
       (SELECT count(*) FROM duplicated),
       (SELECT format('%s %s %s at %s', user_id, slug, operation, at) FROM duplicated LIMIT 1)
UNION ALL
SELECT 'TTL exits once, at their deadlines',
       (SELECT count(*) FROM ttl_off),
       (SELECT format('%s %s at %s, deadline %s', user_id, slug, at, previous_expires_at) FROM ttl_off LIMIT 1)
UNION ALL
SELECT 'no membership held past its deadline',
       (SELECT count(*) FROM overdue),
       (SELECT format('%s segment %s until %s', user_id, segment_id, expires_at) FROM overdue LIMIT 1)
UNION ALL
SELECT 'user replica = the user service''s users',
       (SELECT count(*) FROM replica_mismatch),
       (SELECT format('%s ours=%s theirs=%s', user_id, ours, theirs) FROM replica_mismatch LIMIT 1);
