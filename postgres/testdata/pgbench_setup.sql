-- Data for pgbench_reverse.sql: 256 tickets with 400 active uses each, on a
-- database that daodian has migrated (open it once with the PostgreSQL store).
--
--   psql "$URL" -f pgbench_setup.sql
--   pgbench -n -M prepared -c 64 -j 2 -T 30 -f pgbench_reverse.sql "$URL"
--
-- 256 × 400 reversals are available; a run that needs more finds no use to
-- reverse (the UPDATE of uses then changes nothing) and is no longer the same
-- workload: set up again.
INSERT INTO tickets
SELECT (2100000000000000000 + i)::text, (100000000000 + i)::text, 'm1', 'o' || i, 'so' || i,
	'item', 'out', 'name', 10000, 10000 - 400, 1, 1, 1, now(), now() + interval '30 days', 'VALID', now()
FROM generate_series(0, 255) i;
INSERT INTO uses (trans_id, group_trans_id, ticket_id, app_key, request_id, shop_id, units, gmt_biz, created_at)
SELECT (2200000000000000000 + j)::text, (2200000000000000000 + j)::text, (2100000000000000000 + j % 256)::text,
	'app1', 'r' || j, 'shop1', 1, now(), now()
FROM generate_series(0, 256 * 400 - 1) j;
ANALYZE;
-- The shop of pgbench_use.sql.
INSERT INTO shops (merchant_id, shop_id, name) VALUES ('m1', 'shop1', 'shop') ON CONFLICT DO NOTHING;
