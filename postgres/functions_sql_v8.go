package postgres

// migrationUseLocks is schema version 8: daodian_use takes one more argument,
// p_lock_all. Without it (Decide's first call) a use locks the queried ticket
// alone and, only when that ticket is short of units, the sub-order's other
// tickets it takes units from, each with SKIP LOCKED: concurrent group-buy
// uses of one sub-order then lock different tickets and run side by side
// instead of queueing on the sub-order. A use that finds too few units among
// the tickets no one else holds while some were held raises DD002; Decide
// calls again with p_lock_all, which locks every ticket of the sub-order in
// id order, as version 7 did for every use. No call waits for a lock while
// holding another except in id order, so no deadlock can arise. The rest is
// version 7's daodian_use, statement for statement.
//
// Version 7's signature stays, as a call of the new function with p_lock_all:
// a gateway started before this migration keeps working, with the locking it
// had, until it is restarted (TestUseVersion7Signature).
// useSiblingsCond selects the queried ticket's siblings with units left, in
// the fetch and in the count that tells whether the fetch skipped any: one
// text, so that the two cannot drift apart.
const useSiblingsCond = `sub_order_no = v_t.sub_order_no AND id <> v_t.id AND available > 0 AND status = 'VALID'`

const migrationUseLocks = `
-- The use (use.go Use, useTicket, allocate, applyUse).
CREATE FUNCTION daodian_use(p_app text, p_request text, p_fp bytea, p_merchants text[], p_now timestamptz,
	p_day integer, p_use_date text, p_code text, p_ticket_id text, p_shop_id text, p_quantity integer,
	p_gmt_biz timestamptz, p_gmt_biz_ns integer, p_lock_all boolean,
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
	v_cur refcursor;
	v_left integer;
BEGIN
	o_replayed := false;
	o_conflict := false;
	IF p_lock_all THEN
		-- The ticket's sub-order, unlocked (it never changes), then every
		-- ticket of the sub-order locked in id order (use.go, the use's lock).
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
		END IF;
	ELSE
		-- The queried ticket alone; siblings only if allocate needs them.
		IF p_code <> '' THEN
			SELECT * INTO v_t FROM tickets WHERE code = p_code FOR UPDATE;
		ELSE
			SELECT * INTO v_t FROM tickets WHERE id = p_ticket_id FOR UPDATE;
		END IF;
		IF FOUND THEN
			v_sibs := ARRAY[v_t];
			v_ti := 1;
		END IF;
	END IF;
	IF v_ti > 0 AND p_code <> '' AND p_ticket_id <> '' AND v_sibs[v_ti].id <> p_ticket_id THEN
		v_ti := 0; -- a code and an id of two tickets name neither
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
		IF v_need > 0 AND NOT p_lock_all THEN
			-- The sub-order's other tickets with units, in id order, each
			-- locked as it is fetched, skipping those another transaction
			-- holds: concurrent uses of one sub-order take different tickets
			-- and none waits here, holding the queried ticket's lock.
			OPEN v_cur FOR SELECT * FROM tickets WHERE ` + useSiblingsCond + `
				ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED;
			v_left := v_need;
			LOOP
				FETCH v_cur INTO v_s;
				EXIT WHEN NOT FOUND;
				v_sibs := v_sibs || v_s;
				IF v_s.merchant_id = v_t.merchant_id AND daodian_in_window(v_s.valid_from, v_s.valid_to, p_now) THEN
					v_left := v_left - least(v_s.available, v_left);
				END IF;
				EXIT WHEN v_left = 0;
			END LOOP;
			CLOSE v_cur;
			IF v_left > 0 THEN
				-- Too few units among the tickets no one else holds: if any
				-- were skipped, the answer depends on their holders. Abort
				-- (DD002, releasing every lock) and let Decide call again
				-- with p_lock_all, which waits for them in id order.
				SELECT count(*) INTO v_n FROM tickets WHERE ` + useSiblingsCond + `;
				IF v_n > array_length(v_sibs, 1) - 1 THEN
					RAISE EXCEPTION 'sub-order contended' USING ERRCODE = 'DD002';
				END IF;
			END IF;
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

-- Version 7's call, for a gateway that still makes it: the whole sub-order locked.
CREATE OR REPLACE FUNCTION daodian_use(p_app text, p_request text, p_fp bytea, p_merchants text[], p_now timestamptz,
	p_day integer, p_use_date text, p_code text, p_ticket_id text, p_shop_id text, p_quantity integer,
	p_gmt_biz timestamptz, p_gmt_biz_ns integer,
	OUT o_answer bytea, OUT o_replayed boolean, OUT o_conflict boolean) LANGUAGE sql AS $f$
SELECT * FROM daodian_use(p_app, p_request, p_fp, p_merchants, p_now, p_day, p_use_date, p_code, p_ticket_id,
	p_shop_id, p_quantity, p_gmt_biz, p_gmt_biz_ns, true)
$f$;
`
