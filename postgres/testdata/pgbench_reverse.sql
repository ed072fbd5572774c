-- One reversal as the PostgreSQL store runs it (BenchmarkUpdate): lock the
-- ticket, look the request up, find the latest active use, mark it reversed,
-- give its units back, record the answer. See pgbench_setup.sql.
\set t random(0, 255)
\set r random(1, 1000000000000)
BEGIN;
SELECT id, code, merchant_id, order_no, sub_order_no, item_id, out_item_id, item_name, quantity, available, original_price_cents, total_amount_cents, real_amount_cents, valid_from, valid_to, status, created_at FROM tickets WHERE id = (2100000000000000000 + :t)::text FOR UPDATE;
SELECT app_key, op, request_id, fingerprint, ticket_id, answer, created_at FROM idem WHERE app_key = 'app1' AND op = 'reverse' AND request_id = :client_id || '-' || :r;
SELECT trans_id AS tr, units AS un FROM uses WHERE ticket_id = (2100000000000000000 + :t)::text AND app_key = 'app1' AND NOT reversed ORDER BY trans_id DESC LIMIT 1 \gset
UPDATE uses SET reversed = true, reversed_at = now(), reversal_app_key = 'app1', reversal_request_id = :client_id || '-' || :r, reversal_biz_date = now() WHERE trans_id = (:tr)::text AND NOT reversed;
UPDATE tickets SET available = available + :un WHERE id = (2100000000000000000 + :t)::text;
INSERT INTO idem VALUES ('app1', 'reverse', :client_id || '-' || :r, '\x6670'::bytea, (2100000000000000000 + :t)::text, '\x7b7d'::bytea, now()) ON CONFLICT DO NOTHING;
END;
