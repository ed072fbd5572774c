package postgres

// migrationFunctions is schema version 7: the use, the reversal and the refund as
// PL/pgSQL functions, each one call in its own (autocommit) transaction, so that
// an operation costs one round trip (functions.go). They are the rules of
// use.go, reverse.go and refund.go with runner.go's run around them, statement
// for statement; the contract suite (storetest.RunLedger) and the differential
// test (TestDecideDifferential) hold the two to the same answers and rows. An
// edit of a rule changes both: append a migration that replaces the functions
// (CREATE OR REPLACE), never edit this one once shipped.
//
// Conventions of the functions:
//   - strings arrive escaped as every stored string is (escape.go), and the
//     answer's strings are unescaped into JSON by daodian_js, which writes a
//     string exactly as Go's encoding/json does, so that a recorded answer is
//     byte for byte the one the Go rules record;
//   - times arrive as timestamptz (microseconds, what every column keeps) plus
//     the nanoseconds below the microsecond where a rule compares with them, so
//     that a comparison answers as Go's on the untruncated time;
//   - the use takes the locks of every ticket of its sub-order, in id order,
//     before it reads anything else, as the Go rule does (use.go): two
//     group-buy uses of one sub-order then queue on its first ticket and
//     cannot deadlock; a reversal and a refund lock their one ticket;
//   - an invariant that fails raises SQLSTATE DD001 (message: what, detail:
//     the ticket), which aborts the transaction: Decide answers it as
//     daodian.InvariantError, as the Go path does.
const migrationFunctions = `
CREATE FUNCTION daodian_js_slow(s text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
	v_out text := '';
	v_p integer;
	v_seg text;
BEGIN
	-- An escaped NUL or 0x01 (escape.go) is written as Go writes the byte.
	LOOP
		v_p := strpos(s, chr(1));
		v_seg := to_json(CASE WHEN v_p = 0 THEN s ELSE substr(s, 1, v_p - 1) END)::text;
		v_out := v_out || substr(v_seg, 2, length(v_seg) - 2);
		EXIT WHEN v_p = 0;
		v_out := v_out || CASE WHEN substr(s, v_p + 1, 1) = chr(1) THEN '\u0000' ELSE '\u0001' END;
		s := substr(s, v_p + 2);
	END LOOP;
	RETURN '"' || v_out || '"';
END $f$;

-- A stored string as Go's encoding/json writes it: to_json's escapes are Go's
-- (\" \\ \b \f \n \r \t, \u00xx in lower case), and Go also escapes < > & and
-- U+2028, U+2029. Neither STRICT nor IMMUTABLE (to_json is STABLE), so that
-- the planner inlines it into the expressions that call it: a call of a SQL
-- function that is not inlined costs several microseconds, tens under load.
CREATE FUNCTION daodian_js(s text) RETURNS text LANGUAGE sql STABLE AS $f$
SELECT replace(replace(replace(replace(replace(
	CASE WHEN strpos(s, chr(1)) = 0 THEN to_json(s)::text ELSE daodian_js_slow(s) END,
	'<', '\u003c'), '>', '\u003e'), '&', '\u0026'), chr(8232), '\u2028'), chr(8233), '\u2029')
$f$;

-- Whether the time a (with a_ns nanoseconds below its microsecond) is after b;
-- a NULL b is the zero time, which every time is after.
CREATE FUNCTION daodian_after(a timestamptz, a_ns integer, b timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $f$
SELECT b IS NULL OR a > b OR (a = b AND a_ns > 0)
$f$;

-- Whether a ticket is inside its validity window at now (ticket.go): from
-- valid_from (NULL: always), until before valid_to (NULL: never).
CREATE FUNCTION daodian_in_window(valid_from timestamptz, valid_to timestamptz, now_ timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $f$
SELECT NOT (valid_from IS NOT NULL AND now_ < valid_from) AND NOT (valid_to IS NULL OR now_ >= valid_to)
$f$;

-- use.go's share.
CREATE FUNCTION daodian_share(amount bigint, units integer, quantity integer, remaining integer) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $f$
SELECT CASE WHEN quantity <= 0 THEN 0::bigint
	ELSE amount / quantity * units + CASE WHEN remaining = 0 THEN amount - amount / quantity * quantity ELSE 0 END
END
$f$;

CREATE FUNCTION daodian_refusal(sub_code text, sub_msg text) RETURNS text LANGUAGE sql STABLE AS $f$
SELECT '{"refusal":{"sub_code":' || daodian_js(sub_code) || ',"sub_msg":' || daodian_js(sub_msg) || '}}'
$f$;

-- A reversal's failure (reverse.go failure): never SYSTEM_ERROR, the one
-- retryable code, which is not recorded.
CREATE FUNCTION daodian_failure(code text, msg text) RETURNS text LANGUAGE sql STABLE AS $f$
SELECT '{"success":false,"error_code":' || daodian_js(code) || ',"error_msg":' || daodian_js(msg) || '}'
$f$;

-- ledger.go's checkTicket, on the row as the transaction left it.
CREATE FUNCTION daodian_check_ticket(p_id text, p_before integer, p_delta integer) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
	v_q integer;
	v_a integer;
	v_active integer;
BEGIN
	SELECT quantity, available INTO v_q, v_a FROM tickets WHERE id = p_id;
	IF v_a <> p_before + p_delta THEN
		RAISE EXCEPTION 'available %, want %', v_a,
			p_before || CASE WHEN p_delta >= 0 THEN '+' || p_delta ELSE p_delta::text END
			USING ERRCODE = 'DD001', DETAIL = p_id;
	END IF;
	IF v_a < 0 OR v_a > v_q THEN
		RAISE EXCEPTION 'available % outside [0, %]', v_a, v_q USING ERRCODE = 'DD001', DETAIL = p_id;
	END IF;
	SELECT COALESCE(sum(units), 0) INTO v_active FROM uses WHERE ticket_id = p_id AND NOT reversed;
	IF v_a <> v_q - v_active THEN
		RAISE EXCEPTION 'available % but quantity % minus active units %', v_a, v_q, v_active
			USING ERRCODE = 'DD001', DETAIL = p_id;
	END IF;
END $f$;


-- The three operations share a shape (runner.go run): lock, then the key's
-- record (replayed, or a conflict: not recorded); else the block "decide"
-- sets the answer (and writes the change with its records), and the answer is
-- recorded under the key with the ticket it names. A concurrent request with
-- the same key on another ticket makes that insert fail with a unique
-- violation once the other commits: Decide runs the call again, which then
-- finds the record. The statements are written out rather than shared through
-- helper functions: a call of a PL/pgSQL function costs more than its
-- statement.

-- The use (use.go Use, useTicket, allocate, applyUse).
CREATE FUNCTION daodian_use(p_app text, p_request text, p_fp bytea, p_merchants text[], p_now timestamptz,
	p_day integer, p_use_date text, p_code text, p_ticket_id text, p_shop_id text, p_quantity integer,
	p_gmt_biz timestamptz, p_gmt_biz_ns integer,
	OUT o_answer bytea, OUT o_replayed boolean, OUT o_conflict boolean) LANGUAGE plpgsql AS $f$
DECLARE
	v_sub text;
	v_sibs tickets[];
	v_ti integer := 0;
	v_t tickets;
	v_s tickets;
	v_fp bytea;
	v_ans text;
	v_idem_ticket text := p_ticket_id;
	v_shop_name text;
	v_need integer;
	v_n integer;
	v_pidx integer[] := '{}';
	v_punits integer[] := '{}';
	v_at timestamptz;
	v_id text;
	v_group text;
	v_after integer;
	v_buyer bigint;
	v_receipt bigint;
	v_tot_buyer bigint := 0;
	v_tot_receipt bigint := 0;
	v_details text := '';
	v_first tickets;
BEGIN
	o_replayed := false;
	o_conflict := false;
	-- The ticket's sub-order, unlocked (it never changes), then every ticket of
	-- the sub-order locked in id order (use.go, the use's lock).
	IF p_code <> '' THEN
		SELECT sub_order_no INTO v_sub FROM tickets WHERE code = p_code;
	ELSE
		SELECT sub_order_no INTO v_sub FROM tickets WHERE id = p_ticket_id;
	END IF;
	IF FOUND THEN
		SELECT array_agg(x ORDER BY x.id) INTO v_sibs FROM (
			SELECT * FROM tickets WHERE sub_order_no = v_sub ORDER BY id LIMIT 100 FOR UPDATE) x;
		FOR i IN 1 .. COALESCE(array_length(v_sibs, 1), 0) LOOP
			IF (p_code <> '' AND v_sibs[i].code = p_code) OR (p_code = '' AND v_sibs[i].id = p_ticket_id) THEN
				v_ti := i;
			END IF;
		END LOOP;
		IF v_ti > 0 AND p_code <> '' AND p_ticket_id <> '' AND v_sibs[v_ti].id <> p_ticket_id THEN
			v_ti := 0; -- a code and an id of two tickets name neither
		END IF;
	END IF;
	SELECT i.fingerprint, i.answer INTO v_fp, o_answer FROM idem i
	WHERE i.app_key = p_app AND i.op = 'use' AND i.request_id = p_request;
	IF FOUND THEN
		o_conflict := v_fp <> p_fp;
		o_replayed := NOT o_conflict;
		IF o_conflict THEN
			o_answer := NULL;
		END IF;
		RETURN;
	END IF;
	<<decide>>
	BEGIN
		IF v_ti = 0 OR NOT (v_sibs[v_ti].merchant_id = ANY (p_merchants)) THEN
			v_ans := daodian_refusal('isv.ticket-not-found', '凭证不存在');
			EXIT decide;
		END IF;
		v_t := v_sibs[v_ti];
		v_idem_ticket := v_t.id;
		SELECT name INTO v_shop_name FROM shops WHERE merchant_id = v_t.merchant_id AND shop_id = p_shop_id;
		IF NOT FOUND THEN
			v_ans := daodian_refusal('isv.shop-not-match', '门店与凭证不匹配');
		ELSIF v_t.status <> 'VALID' THEN
			v_ans := daodian_refusal('isv.ticket-status-invalid', '凭证状态不可用');
		ELSIF v_t.valid_from IS NOT NULL AND p_now < v_t.valid_from THEN
			v_ans := daodian_refusal('isv.ticket-not-yet-valid', '凭证未到可用时间');
		ELSIF v_t.valid_to IS NULL OR p_now >= v_t.valid_to THEN
			v_ans := daodian_refusal('isv.ticket-expired', '凭证已过期');
		END IF;
		EXIT decide WHEN v_ans IS NOT NULL;
		-- allocate: the queried ticket first, then the sub-order's other usable
		-- tickets in id order.
		v_need := p_quantity;
		IF v_t.available >= p_quantity THEN
			v_pidx := ARRAY[v_ti];
			v_punits := ARRAY[p_quantity];
			v_need := 0;
		ELSIF v_t.available > 0 THEN
			v_pidx := ARRAY[v_ti];
			v_punits := ARRAY[v_t.available];
			v_need := v_need - v_t.available;
		END IF;
		FOR i IN 1 .. array_length(v_sibs, 1) LOOP
			EXIT WHEN v_need = 0;
			v_s := v_sibs[i];
			CONTINUE WHEN v_s.id = v_t.id OR v_s.available = 0 OR v_s.status <> 'VALID'
				OR NOT daodian_in_window(v_s.valid_from, v_s.valid_to, p_now) OR v_s.merchant_id <> v_t.merchant_id;
			v_n := least(v_s.available, v_need);
			v_pidx := v_pidx || i;
			v_punits := v_punits || v_n;
			v_need := v_need - v_n;
		END LOOP;
		IF v_need > 0 THEN
			v_ans := daodian_refusal('isv.ticket-not-enough-quantity', '凭证可用数量不足');
			EXIT decide;
		END IF;
		FOR k IN 1 .. array_length(v_pidx, 1) LOOP
			SELECT f.at INTO v_at FROM fences f WHERE f.ticket_id = v_sibs[v_pidx[k]].id AND f.app_key = p_app;
			IF FOUND AND NOT daodian_after(p_gmt_biz, p_gmt_biz_ns, v_at) THEN
				v_ans := daodian_refusal('isv.use-fenced-by-reversal',
					'该凭证已被冲正,业务时间不晚于冲正时间的核销被拒绝');
				EXIT decide;
			END IF;
		END LOOP;
		-- applyUse
		v_first := v_sibs[v_pidx[1]];
		FOR k IN 1 .. array_length(v_pidx, 1) LOOP
			v_s := v_sibs[v_pidx[k]];
			v_id := nextval('daodian_ids')::text;
			IF k = 1 THEN
				v_group := v_id;
			END IF;
			v_after := v_s.available - v_punits[k];
			v_buyer := daodian_share(v_s.total_amount_cents, v_punits[k], v_s.quantity, v_after);
			v_receipt := daodian_share(v_s.real_amount_cents, v_punits[k], v_s.quantity, v_after);
			INSERT INTO uses (trans_id, group_trans_id, ticket_id, app_key, request_id, shop_id, units, gmt_biz,
				created_at, buyer_pay_cents, receipt_cents)
			VALUES (v_id, v_group, v_s.id, p_app, p_request, p_shop_id, v_punits[k], p_gmt_biz, p_now, v_buyer,
				v_receipt);
			UPDATE tickets SET available = v_after WHERE id = v_s.id;
			PERFORM daodian_check_ticket(v_s.id, v_s.available, -v_punits[k]);
			v_tot_buyer := v_tot_buyer + v_buyer;
			v_tot_receipt := v_tot_receipt + v_receipt;
			v_details := v_details || CASE WHEN k > 1 THEN ',' ELSE '' END
				|| '{"trans_id":' || daodian_js(v_id) || ',"ticket_id":' || daodian_js(v_s.id)
				|| ',"ticket_code":' || daodian_js(v_s.code) || ',"units":' || v_punits[k]
				|| ',"buyer_pay_cents":' || v_buyer || ',"receipt_cents":' || v_receipt || '}';
			INSERT INTO record_queue (at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key,
				units, biz_time, buyer_pay_cents, receipt_cents)
			VALUES (p_now, p_day, 'use', v_s.merchant_id, p_shop_id, v_s.id, v_id, p_request, p_app, v_punits[k],
				p_gmt_biz, v_buyer, v_receipt);
		END LOOP;
		v_ans := '{"trans_id":' || daodian_js(v_group) || ',"request_id":' || daodian_js(p_request)
			|| ',"ticket_code":' || daodian_js(v_first.code) || ',"ticket_id":' || daodian_js(v_first.id)
			|| ',"use_date":' || p_use_date || ',"shop_id":' || daodian_js(p_shop_id)
			|| ',"shop_name":' || daodian_js(v_shop_name) || ',"item_id":' || daodian_js(v_first.item_id)
			|| ',"item_name":' || daodian_js(v_first.item_name) || ',"order_no":' || daodian_js(v_first.order_no)
			|| ',"original_price_cents":' || v_first.original_price_cents
			|| ',"current_price_cents":' || v_first.total_amount_cents
			|| ',"buyer_pay_cents":' || v_tot_buyer || ',"receipt_cents":' || v_tot_receipt
			|| ',"biz_code":"SUCCESS","details":[' || v_details || ']}';
	END;
	o_answer := convert_to(v_ans, 'UTF8');
	INSERT INTO idem (app_key, op, request_id, fingerprint, ticket_id, answer, created_at)
	VALUES (p_app, 'use', p_request, p_fp, v_idem_ticket, o_answer, p_now);
END $f$;

-- The reversal (reverse.go Reverse, reverseTicket, foreignUse, fence).
CREATE FUNCTION daodian_reverse(p_app text, p_request text, p_fp bytea, p_merchants text[], p_now timestamptz,
	p_now_ns integer, p_day integer, p_ticket_id text, p_trans_id text, p_biz timestamptz, p_biz_ns integer,
	p_window_ns bigint,
	OUT o_answer bytea, OUT o_replayed boolean, OUT o_conflict boolean) LANGUAGE plpgsql AS $f$
DECLARE
	v_t tickets;
	v_has_t boolean;
	v_u uses;
	v_g uses;
	v_fp bytea;
	v_ans text;
	v_idem_ticket text := p_ticket_id;
	v_m text;
	v_at timestamptz;
BEGIN
	o_replayed := false;
	o_conflict := false;
	SELECT * INTO v_t FROM tickets WHERE id = p_ticket_id FOR UPDATE;
	v_has_t := FOUND;
	SELECT i.fingerprint, i.answer INTO v_fp, o_answer FROM idem i
	WHERE i.app_key = p_app AND i.op = 'reverse' AND i.request_id = p_request;
	IF FOUND THEN
		o_conflict := v_fp <> p_fp;
		o_replayed := NOT o_conflict;
		IF o_conflict THEN
			o_answer := NULL;
		END IF;
		RETURN;
	END IF;
	<<decide>>
	BEGIN
		IF NOT v_has_t OR NOT (v_t.merchant_id = ANY (p_merchants)) THEN
			v_ans := daodian_failure('TICKET_NOT_FOUND', '凭证不存在');
			EXIT decide;
		END IF;
		v_idem_ticket := v_t.id;
		v_ans := '{"success":true}';
		IF p_trans_id <> '' THEN
			SELECT * INTO v_u FROM uses WHERE trans_id = p_trans_id;
			IF NOT FOUND THEN
				v_ans := daodian_failure('TICKET_USE_TRANS_NOT_FOUND', '核销流水不存在');
				EXIT decide;
			END IF;
			IF v_u.ticket_id <> v_t.id THEN
				-- The top-level id of a group-buy use names the whole group.
				SELECT * INTO v_g FROM uses WHERE group_trans_id = p_trans_id AND ticket_id = v_t.id
				ORDER BY trans_id LIMIT 1;
				IF NOT FOUND THEN
					-- foreignUse: MISMATCH only for a use the app could see anyway.
					SELECT merchant_id INTO v_m FROM tickets WHERE id = v_u.ticket_id;
					IF NOT FOUND OR NOT (v_m = ANY (p_merchants)) THEN
						v_ans := daodian_failure('TICKET_USE_TRANS_NOT_FOUND', '核销流水不存在');
					ELSE
						v_ans := daodian_failure('TICKET_USE_TRANS_MISMATCH', '核销流水与凭证不匹配');
					END IF;
					EXIT decide;
				END IF;
				v_u := v_g;
			END IF;
			EXIT decide WHEN v_u.reversed;
		ELSE
			SELECT * INTO v_u FROM uses WHERE ticket_id = v_t.id AND app_key = p_app AND NOT reversed
			ORDER BY trans_id DESC LIMIT 1;
			IF NOT FOUND THEN
				-- fence: an empty reversal; a fence only moves forward.
				SELECT f.at INTO v_at FROM fences f WHERE f.ticket_id = v_t.id AND f.app_key = p_app;
				IF NOT FOUND OR daodian_after(p_biz, p_biz_ns, v_at) THEN
					INSERT INTO fences (ticket_id, app_key, at, request_id, created_at)
					VALUES (v_t.id, p_app, p_biz, p_request, p_now)
					ON CONFLICT (ticket_id, app_key) DO UPDATE SET at = EXCLUDED.at,
						request_id = EXCLUDED.request_id, created_at = EXCLUDED.created_at;
					INSERT INTO record_queue (at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id,
						app_key, units, biz_time, buyer_pay_cents, receipt_cents)
					VALUES (p_now, p_day, 'fence', v_t.merchant_id, '', v_t.id, '', p_request, p_app, 0, p_biz, 0, 0);
				END IF;
				EXIT decide;
			END IF;
		END IF;
		IF v_u.refunded THEN
			v_ans := daodian_failure('TICKET_STATUS_INVALID', '凭证状态不支持冲正');
			EXIT decide;
		END IF;
		-- The window in nanoseconds, from the exact time of the call.
		IF v_u.created_at IS NULL OR ((extract(epoch FROM p_now) - extract(epoch FROM v_u.created_at)) * 1000000)::bigint
				* 1000 + p_now_ns > p_window_ns THEN
			v_ans := daodian_failure('REVERSE_TIME_EXPIRED', '已超过冲正时效');
			EXIT decide;
		END IF;
		UPDATE uses SET reversed = true, reversed_at = p_now, reversal_app_key = p_app,
			reversal_request_id = p_request, reversal_biz_date = p_biz
		WHERE trans_id = v_u.trans_id AND NOT reversed;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'use % is already reversed', v_u.trans_id USING ERRCODE = 'DD001', DETAIL = v_t.id;
		END IF;
		UPDATE tickets SET available = v_t.available + v_u.units WHERE id = v_t.id;
		PERFORM daodian_check_ticket(v_t.id, v_t.available, v_u.units);
		INSERT INTO record_queue (at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units,
			biz_time, buyer_pay_cents, receipt_cents)
		VALUES (p_now, p_day, 'reversal', v_t.merchant_id, v_u.shop_id, v_t.id, v_u.trans_id, p_request, p_app,
			v_u.units, p_biz, v_u.buyer_pay_cents, v_u.receipt_cents);
	END;
	o_answer := convert_to(v_ans, 'UTF8');
	INSERT INTO idem (app_key, op, request_id, fingerprint, ticket_id, answer, created_at)
	VALUES (p_app, 'reverse', p_request, p_fp, v_idem_ticket, o_answer, p_now);
END $f$;

-- The after-sale refund (refund.go Refund, refundUse).
CREATE FUNCTION daodian_refund(p_app text, p_request text, p_fp bytea, p_merchants text[], p_now timestamptz,
	p_day integer, p_code text, p_trans_id text,
	OUT o_answer bytea, OUT o_replayed boolean, OUT o_conflict boolean) LANGUAGE plpgsql AS $f$
DECLARE
	v_t tickets;
	v_has_t boolean;
	v_u uses;
	v_fp bytea;
	v_ans text;
	v_idem_ticket text := '';
BEGIN
	o_replayed := false;
	o_conflict := false;
	SELECT * INTO v_t FROM tickets WHERE code = p_code FOR UPDATE;
	v_has_t := FOUND;
	SELECT i.fingerprint, i.answer INTO v_fp, o_answer FROM idem i
	WHERE i.app_key = p_app AND i.op = 'refund' AND i.request_id = p_request;
	IF FOUND THEN
		o_conflict := v_fp <> p_fp;
		o_replayed := NOT o_conflict;
		IF o_conflict THEN
			o_answer := NULL;
		END IF;
		RETURN;
	END IF;
	<<decide>>
	BEGIN
		IF NOT v_has_t OR NOT (v_t.merchant_id = ANY (p_merchants)) THEN
			v_ans := daodian_refusal('isv.ticket-not-found', '凭证不存在');
			EXIT decide;
		END IF;
		v_idem_ticket := v_t.id;
		SELECT * INTO v_u FROM uses WHERE trans_id = p_trans_id;
		IF NOT FOUND OR v_u.ticket_id <> v_t.id THEN
			v_ans := daodian_refusal('isv.use-trans-not-found', '核销流水不存在');
			EXIT decide;
		END IF;
		IF v_u.reversed THEN
			v_ans := daodian_refusal('isv.use-already-reversed', '核销已被冲正,不能退款');
			EXIT decide;
		END IF;
		v_ans := '{"request_id":' || daodian_js(p_request) || ',"biz_code":"SUCCESS"}';
		-- A refund of a refunded use changes nothing, and records nothing.
		EXIT decide WHEN v_u.refunded;
		UPDATE uses SET refunded = true, refunded_at = p_now, refund_app_key = p_app, refund_request_id = p_request
		WHERE trans_id = v_u.trans_id AND NOT refunded;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'use % is already refunded', v_u.trans_id USING ERRCODE = 'DD001', DETAIL = v_t.id;
		END IF;
		PERFORM daodian_check_ticket(v_t.id, v_t.available, 0);
		INSERT INTO record_queue (at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units,
			biz_time, buyer_pay_cents, receipt_cents)
		VALUES (p_now, p_day, 'refund', v_t.merchant_id, v_u.shop_id, v_t.id, v_u.trans_id, p_request, p_app,
			v_u.units, NULL, v_u.buyer_pay_cents, v_u.receipt_cents);
	END;
	o_answer := convert_to(v_ans, 'UTF8');
	INSERT INTO idem (app_key, op, request_id, fingerprint, ticket_id, answer, created_at)
	VALUES (p_app, 'refund', p_request, p_fp, v_idem_ticket, o_answer, p_now);
END $f$;
`
