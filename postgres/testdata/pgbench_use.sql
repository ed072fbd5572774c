-- One use (redemption) of one unit as the PostgreSQL store runs it: lock the
-- ticket by code, look the request up, check the shop and the fence, take an
-- id, record the use, take the unit, check the active units, record the
-- answer. With pgbench_reverse.sql, it is the workload of `daodian bench`
-- (use, then reverse) in plain SQL, one statement per round trip:
--
--   pgbench -n -M prepared -c 64 -j 2 -T 10 -f pgbench_use.sql -f pgbench_reverse.sql "$URL"
--
-- See pgbench_setup.sql.
\set t random(0, 255)
\set r random(1, 1000000000000)
BEGIN;
SELECT available AS av FROM tickets WHERE code = (100000000000 + :t)::text FOR UPDATE \gset
SELECT app_key, op, request_id, fingerprint, ticket_id, answer, created_at FROM idem WHERE app_key = 'app1' AND op = 'use' AND request_id = 'u' || :client_id || '-' || :r;
SELECT merchant_id, shop_id, name FROM shops WHERE merchant_id = 'm1' AND shop_id = 'shop1';
SELECT ticket_id, app_key, at, request_id, created_at FROM fences WHERE ticket_id = (2100000000000000000 + :t)::text AND app_key = 'app1';
SELECT nextval('daodian_ids') AS id \gset
INSERT INTO uses (trans_id, group_trans_id, ticket_id, app_key, request_id, shop_id, units, gmt_biz, created_at)
VALUES (:id::text, :id::text, (2100000000000000000 + :t)::text, 'app1', 'u' || :client_id || '-' || :r, 'shop1', 1, now(), now());
UPDATE tickets SET available = :av - 1 WHERE id = (2100000000000000000 + :t)::text;
SELECT COALESCE(sum(units), 0) FROM uses WHERE ticket_id = (2100000000000000000 + :t)::text AND NOT reversed;
INSERT INTO idem VALUES ('app1', 'use', 'u' || :client_id || '-' || :r, '\x6670'::bytea, (2100000000000000000 + :t)::text, '\x7b7d'::bytea, now());
END;
