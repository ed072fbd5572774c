-- One use and one reversal of the latest use, each as the PostgreSQL store
-- runs it since migration 8: one call of its server-side function, one
-- statement, no transaction block (functions_sql.go, functions_sql_v8.go;
-- the use's last argument is p_lock_all, false as on Decide's first call;
-- without it the call is version 7's, a SQL wrapper around it, which made a
-- use-and-reversal pair cost half as much again). The workload of pgbench_use.sql + pgbench_reverse.sql (and of
-- `daodian bench`: use, then reverse), for the same comparison with pgbench:
--
--   pgbench -n -M prepared -c 64 -j 2 -T 10 -f pgbench_decide.sql "$URL"
--
-- See pgbench_setup.sql. Each transaction of this script is a use and a
-- reversal: twice the operations of one of pgbench_use.sql's or
-- pgbench_reverse.sql's.
\set t random(0, 255)
\set r random(1, 1000000000000)
SELECT o_answer FROM daodian_use('app1', 'u' || :client_id || '-' || :r, '\x6670'::bytea, '{m1}', now(), 20261130,
	'"2026-11-30T10:00:00Z"', (100000000000 + :t)::text, '', 'shop1', 1, now(), 0, false);
SELECT o_answer FROM daodian_reverse('app1', 'r' || :client_id || '-' || :r, '\x6670'::bytea, '{m1}', now(), 0,
	20261130, (2100000000000000000 + :t)::text, '', now(), 0, 86400000000000);
