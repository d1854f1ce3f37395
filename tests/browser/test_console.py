"""The operator console in a real browser, and the admin API's gate: a late
payment found in the review queue, refunded (by a transfer the operator
made by hand, recorded with its reference: payOS has no refund API, and its
payouts are not used when a transfer is recorded), its review resolved, its
callback replayed (dry run, then applied: a duplicate changes nothing)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import ShopStack

pytestmark = pytest.mark.slow


def sim_control(stack: ShopStack, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{stack.sim.base_url}/_control/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"simulator {path}: {error.read()!r}") from None


def late_payment(stack: ShopStack, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A payOS payment whose money arrives after the attempt expired: the
    order, and the payment flagged for review."""
    order = stack.order_for(user)
    status, body = stack.call(
        "POST",
        f"/v1/orders/{order['id']}:retryPayment",
        {"provider": "PROVIDER_PAYOS"},
        token=stack.keys.token(user),
    )
    assert status == 200, body
    admin = stack.keys.token("ops", admin=True)
    status, found = stack.call("GET", f"/admin/v1/payments?query={order['order_code']}", token=admin)
    assert status == 200 and len(found["payments"]) == 1, found
    reference = found["payments"][0]["provider_reference"]
    # The shopper pays at payOS, and its webhook never reaches us ...
    sim_control(stack, "faults", {"gateway": "payos", "fault": "drop", "reference": reference})
    sim_control(stack, "pay", {"gateway": "payos", "reference": reference, "action": "pay"})
    # ... while our clock passes the attempt's expiry: closing the link at
    # payOS finds the money, which arrived for an attempt already expired.
    saved = stack.clock.now
    stack.clock.advance(hours=2)
    try:
        assert stack.payment.app.use_cases.expire_due_payments() >= 1
    finally:
        stack.clock.now = saved
    deadline = time.monotonic() + 15
    while True:
        status, found = stack.call("GET", f"/admin/v1/payments?query={order['order_code']}", token=admin)
        assert status == 200, found
        flagged = [p for p in found["payments"] if p["needs_review"]]
        if flagged:
            return order, flagged[0]
        assert time.monotonic() < deadline, f"no payment in review for order {order['order_code']}: {found}"
        time.sleep(0.1)


def test_admin_api_needs_the_admin_claim(shop_stack: ShopStack) -> None:
    path = "/admin/v1/reviews"
    status, body = shop_stack.call("GET", path)
    assert status == 401 and body["details"][0]["reason"] == "TOKEN_MISSING"
    shopper = shop_stack.keys.token("u1")
    status, body = shop_stack.call("GET", path, token=shopper)
    assert status == 403 and body["details"][0]["reason"] == "FORBIDDEN"
    # A forged copy of the header the claim is copied to is removed first.
    status, body = shop_stack.call("GET", path, token=shopper, x_payments_admin="true")
    assert status == 403
    status, body = shop_stack.call("POST", "/admin/v1/callbacks/1:replay", {}, token=shopper)
    assert status == 403
    refund = {"amount": 1000, "request_id": "shopper-refund", "restock": True}
    status, body = shop_stack.call(
        "POST", "/admin/v1/payments/6f1c2a5e-0d1b-4c9e-9a57-2b8f0a3c4d5e:refund", refund, token=shopper
    )
    assert status == 403
    status, body = shop_stack.call("GET", path, token=shop_stack.keys.token("ops", admin=True))
    assert status == 200 and "payments" in body
    # The console's page itself is public; its data is not.
    status, _ = shop_stack.call("GET", "/admin/v1/payments?query=1", x_payments_admin="true")
    assert status == 401


def test_operator_refunds_a_late_payment_and_resolves_its_review(
    page: Any, shop_stack: ShopStack, user: str
) -> None:
    order, payment = late_payment(shop_stack, user)
    number = str(order["order_code"])
    page.goto(f"{shop_stack.base_url}/console/dev-login?user=ops")
    page.wait_for_url(f"{shop_stack.base_url}/console/")
    row = page.get_by_test_id("review-row").filter(has_text=f"#{number}")
    assert "89.000 ₫" in row.inner_text()
    assert "PAYOS" in row.inner_text()
    page.screenshot(path=shop_stack.screenshots / "console-queue.png", full_page=True)

    # Found by its order number too.
    page.get_by_test_id("payment-search").fill(number)
    page.get_by_test_id("payment-search").press("Enter")
    page.wait_for_url("**/console/search?q=*")
    page.get_by_test_id("search-row").filter(has_text="#1").get_by_role("link").click()
    page.wait_for_url(f"**/console/payments/{payment['id']}")
    assert "89.000 ₫" == page.get_by_test_id("payment-amount").inner_text()
    assert page.get_by_test_id("needs-review").count() == 1
    # What closing the link found: journaled as a reconciliation answer.
    assert "late_success" in page.get_by_test_id("callback-row").first.inner_text()
    assert page.get_by_test_id("timeline-event").count() >= 2
    assert page.get_by_test_id("refunded-amount").inner_text() == "0 ₫"

    # Refund: the operator transferred it by hand and records the transfer
    # (left empty, development's payout keys would pay it out instead).
    page.get_by_test_id("refund-amount").fill("89000")
    page.get_by_label("Mã chuyển khoản (payOS, COD: hoàn tiền thủ công)").fill("FT26001234")
    page.get_by_test_id("refund-submit").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=refunded-amount]').textContent === '89.000 ₫'"
    )
    assert "SUCCEEDED" in page.get_by_test_id("refund-row").inner_text()
    page.screenshot(path=shop_stack.screenshots / "console-payment-payos.png", full_page=True)

    # Then the review is closed, and it leaves the queue.
    page.get_by_test_id("resolve-honour").click()
    page.wait_for_selector("[data-testid=needs-review]", state="detached")
    status, body = shop_stack.call(
        "GET", f"/admin/v1/payments/{payment['id']}", token=shop_stack.keys.token("ops", admin=True)
    )
    assert status == 200
    assert body["payment"]["review_resolution"] == "REVIEW_ACTION_HONOUR"
    assert body["payment"]["refunded_amount"] == "89000"
    page.goto(f"{shop_stack.base_url}/console/")
    page.locator("main h2").wait_for()  # the queue is rendered
    assert page.get_by_test_id("review-row").filter(has_text=f"#{number}").count() == 0


def test_console_without_an_admin_token_shows_why(page: Any, shop_stack: ShopStack, user: str) -> None:
    page.goto(f"{shop_stack.base_url}/shop/dev-login?user={user}")  # a shopper's token
    page.wait_for_url(f"{shop_stack.base_url}/shop/")
    page.goto(f"{shop_stack.base_url}/console/")
    assert "forbidden" in page.get_by_role("alert").inner_text()


def test_operator_replays_a_journaled_callback(page: Any, shop_stack: ShopStack, user: str) -> None:
    """A VNPay IPN replayed through today's code: the dry run says what it
    would do (nothing: it was applied once), applying it journals it again
    and changes nothing, as a repeated callback must."""
    order = shop_stack.order_for(user)
    status, body = shop_stack.call(
        "POST",
        f"/v1/orders/{order['id']}:retryPayment",
        {"provider": "PROVIDER_VNPAY"},
        token=shop_stack.keys.token(user),
    )
    assert status == 200, body
    sim_control(shop_stack, "pay", {"gateway": "vnpay", "url": body["checkout_url"], "action": "pay"})
    admin = shop_stack.keys.token("ops", admin=True)
    deadline = time.monotonic() + 15
    while True:
        _, found = shop_stack.call("GET", f"/admin/v1/payments?query={order['order_code']}", token=admin)
        if found["payments"] and found["payments"][0]["status"] == "PAYMENT_STATUS_SUCCEEDED":
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    payment = found["payments"][0]
    page.goto(f"{shop_stack.base_url}/console/dev-login?user=ops")
    page.wait_for_url(f"{shop_stack.base_url}/console/")
    page.goto(f"{shop_stack.base_url}/console/payments/{payment['id']}")
    page.get_by_test_id("callback-row").first.wait_for()
    callbacks = page.get_by_test_id("callback-row").count()
    assert callbacks >= 1
    page.get_by_test_id("replay-button").first.click()
    result = page.get_by_test_id("replay-result")
    assert "duplicate" in result.inner_text()
    assert "Không có gì thay đổi." in result.inner_text()
    page.get_by_test_id("replay-apply").click()
    page.wait_for_function(
        f"document.querySelectorAll('[data-testid=callback-row]').length === {callbacks + 1}"
    )
    _, after = shop_stack.call("GET", f"/admin/v1/payments/{payment['id']}", token=admin)
    assert after["payment"]["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert after["payment"]["version"] == payment["version"]
    # Force reconcile: VNPay is asked now; its answer (paid) changes nothing.
    page.get_by_test_id("reconcile-button").click()
    page.wait_for_selector("text=Kết quả: duplicate")
    assert page.get_by_test_id("callback-row").count() == callbacks + 2
    assert "reconcile" in page.get_by_test_id("callback-row").last.inner_text()
    # A replay of something that is no gateway notification is refused, clearly.
    status, body = shop_stack.call(
        "POST", "/admin/v1/callbacks/999999999:replay", {"dry_run": True}, token=admin
    )
    assert status == 404 and "999999999" in body["message"]


# --- refunds through a gateway's refund API (VNPay) --------------------------


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 15) -> Any:
    """Polls `probe` until it returns something truthy, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def ledger(stack: ShopStack, reference: str) -> dict[str, Any]:
    """The simulator's books for one transaction (GET /_control/transactions)."""
    with urllib.request.urlopen(f"{stack.sim.base_url}/_control/transactions?gateway=vnpay", timeout=10) as r:
        txns = json.loads(r.read())["transactions"]
    (txn,) = [t for t in txns if t["reference"] == reference]
    return dict(txn)


def settle_refunds(stack: ShopStack) -> int:
    """VNPay's schedule runs out on the simulator's clock (processing, sent
    to bank, succeeded after 4 s), then our clock reaches the refunds'
    reconcile time and the service asks VNPay (querydr), as its worker does."""
    sim_control(stack, "clock", {"seconds": 5})
    saved = stack.clock.now
    stack.clock.advance(minutes=3)
    try:
        return int(stack.payment.app.refunds.reconcile_due())
    finally:
        stack.clock.now = saved


def admin_payments(stack: ShopStack, query: str) -> list[dict[str, Any]]:
    status, found = stack.call(
        "GET", f"/admin/v1/payments?query={query}", token=stack.keys.token("ops", admin=True)
    )
    assert status == 200, found
    return list(found["payments"])


def order_status(stack: ShopStack, user: str, order_id: str, wanted: str) -> dict[str, Any]:
    """The order once the order service has followed the payment's events to `wanted`."""

    def probe() -> dict[str, Any] | None:
        status, body = stack.call("GET", f"/v1/orders/{order_id}", token=stack.keys.token(user))
        assert status == 200, body
        return body["order"] if body["order"]["status"] == wanted else None

    return dict(wait_until(f"order {order_id} {wanted}", probe))


def stock_of(stack: ShopStack, variant: str) -> int:
    status, body = stack.call("GET", "/v1/products?page_size=100", token=stack.keys.token("u1"))
    assert status == 200, body
    return int(next(p["stock"] for p in body["products"] if p["variant_id"] == variant))


def submit_refund(page: Any, amount: str) -> None:
    page.get_by_test_id("refund-amount").fill(amount)
    page.get_by_test_id("refund-submit").click()


def shop_order_page(page: Any, stack: ShopStack, user: str, order_id: str, status: str) -> Any:
    """The shopper's own order page (the shopper's token, then the page)."""
    page.goto(f"{stack.base_url}/shop/dev-login?user={user}")
    page.wait_for_url(f"{stack.base_url}/shop/")
    page.goto(f"{stack.base_url}/shop/orders/{order_id}")
    badge = page.get_by_test_id("order-status")
    badge.wait_for()
    assert badge.get_attribute("data-status") == status
    return badge


def console_payment_page(page: Any, stack: ShopStack, payment_id: str) -> None:
    page.goto(f"{stack.base_url}/console/dev-login?user=ops")
    page.wait_for_url(f"{stack.base_url}/console/")
    page.goto(f"{stack.base_url}/console/payments/{payment_id}")
    page.get_by_test_id("refund-submit").wait_for()


def test_operator_refunds_part_then_the_rest_through_vnpay(
    page: Any, shop_stack: ShopStack, user: str
) -> None:
    """A paid VNPay order refunded from the console through VNPay's refund
    API: refusals said plainly (more than captured, a second refund while
    one is pending), each refund PENDING until VNPay's schedule runs out,
    then SUCCEEDED; VNPay's books agree, and the shopper's order page says
    PARTIALLY_REFUNDED, then REFUNDED, with the amount given back."""
    stack = shop_stack
    order = stack.order_for(user)
    status, body = stack.call(
        "POST",
        f"/v1/orders/{order['id']}:retryPayment",
        {"provider": "PROVIDER_VNPAY"},
        token=stack.keys.token(user),
    )
    assert status == 200, body
    sim_control(stack, "pay", {"gateway": "vnpay", "url": body["checkout_url"], "action": "pay"})
    order_status(stack, user, order["id"], "ORDER_STATUS_PAID")
    (payment,) = admin_payments(stack, str(order["order_code"]))
    reference = payment["provider_reference"]
    assert ledger(stack, reference)["captured"] == 89_000

    console_payment_page(page, stack, payment["id"])
    # The restock choice is a labelled checkbox, off unless the operator ticks it.
    restock = page.get_by_label("Trả hàng về kho (đơn hàng không giao)")
    assert restock.get_attribute("type") == "checkbox" and not restock.is_checked()

    # More than was captured: refused, said plainly, nothing written.
    submit_refund(page, "100000")
    error = page.get_by_test_id("action-error")
    error.wait_for()
    assert error.get_attribute("data-reason") == "REFUND_EXCEEDS_CAPTURED"
    assert error.get_attribute("role") == "alert"
    assert "lớn hơn số tiền còn lại" in error.inner_text()
    assert page.get_by_test_id("refund-row").count() == 0

    # Part of it: VNPay accepts, and the refund waits for VNPay's answer.
    submit_refund(page, "30.000")  # as typed: the dots are thousands
    page.get_by_test_id("refund-pending").wait_for()
    row = page.get_by_test_id("refund-row")
    assert row.count() == 1 and row.get_attribute("data-status") == "REFUND_STATUS_PENDING"
    assert "30.000 ₫" in row.inner_text()
    assert page.get_by_test_id("refunded-amount").inner_text() == "0 ₫"
    books = ledger(stack, reference)
    assert [(r["amount"], r["final"]) for r in books["refunds"]] == [(30_000, False)]

    # VNPay refunds a transaction one refund at a time: the rest must wait.
    submit_refund(page, "")
    error = page.get_by_test_id("action-error")
    error.wait_for()
    assert error.get_attribute("data-reason") == "REFUND_IN_PROGRESS"
    assert "VNPay chỉ hoàn lần lượt" in error.inner_text()
    assert page.get_by_test_id("refund-row").count() == 1
    assert len(ledger(stack, reference)["refunds"]) == 1

    assert settle_refunds(stack) == 1
    # The page follows the pending refund by itself.
    page.wait_for_selector("[data-testid=refund-row][data-status=REFUND_STATUS_SUCCEEDED]")
    assert page.get_by_test_id("refunded-amount").inner_text() == "30.000 ₫"
    assert page.get_by_test_id("refund-pending").count() == 0
    books = ledger(stack, reference)
    assert books["refunded"] == 30_000
    assert [(r["amount"], r["status"]) for r in books["refunds"]] == [(30_000, "succeeded")]

    got = order_status(stack, user, order["id"], "ORDER_STATUS_PARTIALLY_REFUNDED")
    assert got["refunded_amount"] == "30000"
    badge = shop_order_page(page, stack, user, order["id"], "ORDER_STATUS_PARTIALLY_REFUNDED")
    assert badge.inner_text() == "Đã hoàn tiền một phần"
    assert page.get_by_test_id("order-refunded").inner_text() == "30.000 ₫"
    assert page.get_by_test_id("pay-again").count() == 0

    # The rest, with the stock given back (the goods will not ship).
    stock = stock_of(stack, "mug-blue")
    console_payment_page(page, stack, payment["id"])
    page.get_by_label("Trả hàng về kho (đơn hàng không giao)").check()
    submit_refund(page, "")
    page.get_by_test_id("refund-pending").wait_for()
    pending = page.locator("[data-testid=refund-row][data-status=REFUND_STATUS_PENDING]")
    assert pending.count() == 1 and "59.000 ₫" in pending.inner_text()
    assert settle_refunds(stack) == 1
    page.wait_for_selector("[data-testid=refund-pending]", state="detached")
    rows = page.get_by_test_id("refund-row")
    assert [rows.nth(i).get_attribute("data-status") for i in range(rows.count())] == [
        "REFUND_STATUS_SUCCEEDED",
        "REFUND_STATUS_SUCCEEDED",
    ]
    texts = rows.all_inner_texts()
    assert any("30.000 ₫" in t for t in texts) and any("59.000 ₫" in t for t in texts)
    assert page.get_by_test_id("refunded-amount").inner_text() == "89.000 ₫"
    books = ledger(stack, reference)
    assert books["refunded"] == 89_000
    assert sorted((r["amount"], r["status"]) for r in books["refunds"]) == [
        (30_000, "succeeded"),
        (59_000, "succeeded"),
    ]

    got = order_status(stack, user, order["id"], "ORDER_STATUS_REFUNDED")
    assert got["refunded_amount"] == "89000"
    wait_until("the stock given back", lambda: stock_of(stack, "mug-blue") == stock + 1)
    badge = shop_order_page(page, stack, user, order["id"], "ORDER_STATUS_REFUNDED")
    assert badge.inner_text() == "Đã hoàn tiền"
    assert page.get_by_test_id("order-refunded").inner_text() == "89.000 ₫"
    page.get_by_role("button", name="English").click()
    page.wait_for_selector("text=Refunded")
    assert page.get_by_test_id("order-status").inner_text() == "Refunded"
    page.screenshot(path=stack.screenshots / "shop-order-refunded.png", full_page=True)
    page.get_by_role("button", name="Tiếng Việt").click()
    page.get_by_test_id("order-status").wait_for()


def test_operator_refunds_a_late_vnpay_payment_whose_stock_is_gone(
    page: Any, shop_stack: ShopStack, user: str
) -> None:
    """LATE_PAYMENT_POLICY=honour takes the stock again for late money, but
    here it is gone: the order expired, another shopper bought every shirt
    left, then the first shopper paid on the VNPay page still open. The
    order lands in NEEDS_REVIEW; the operator refunds it through VNPay's
    refund API from the console and closes the review, and the order goes
    back to EXPIRED with the money shown as given back."""
    stack = shop_stack
    variant = "tshirt-white-l"  # no other browser test buys it
    order = stack.order_for(user, variant)
    status, body = stack.call(
        "POST",
        f"/v1/orders/{order['id']}:retryPayment",
        {"provider": "PROVIDER_VNPAY"},
        token=stack.keys.token(user),
    )
    assert status == 200, body
    checkout_url = body["checkout_url"]
    # Our clock passes the attempt's and the order's deadlines: both expire.
    saved = stack.clock.now
    stack.clock.advance(hours=2)
    try:
        assert stack.payment.app.use_cases.expire_due_payments() >= 1
        assert stack.orders.app.use_cases.expire_due_orders() >= 1
    finally:
        stack.clock.now = saved
    order_status(stack, user, order["id"], "ORDER_STATUS_EXPIRED")
    # Every shirt left goes to another shopper.
    left = stock_of(stack, variant)
    assert 0 < left <= 100
    stack.order_for(f"{user}-other", variant, quantity=left)
    assert stock_of(stack, variant) == 0
    # The first shopper still pays on the page they had open.
    sim_control(stack, "pay", {"gateway": "vnpay", "url": checkout_url, "action": "pay"})
    got = order_status(stack, user, order["id"], "ORDER_STATUS_NEEDS_REVIEW")
    assert "stock no longer available" in got["status_reason"]
    payment = wait_until(
        "the late payment in review",
        lambda: next((p for p in admin_payments(stack, str(order["order_code"])) if p["needs_review"]), None),
    )
    amount = int(order["total_amount"])
    price = f"{amount:,} ₫".replace(",", ".")
    reference = payment["provider_reference"]
    assert ledger(stack, reference)["captured"] == amount

    # The operator finds it in the review queue ...
    page.goto(f"{stack.base_url}/console/dev-login?user=ops")
    page.wait_for_url(f"{stack.base_url}/console/")
    row = page.get_by_test_id("review-row").filter(has_text=f"#{order['order_code']}")
    assert "VNPAY" in row.inner_text() and price in row.inner_text()
    row.get_by_role("link").click()
    page.wait_for_url(f"**/console/payments/{payment['id']}")
    page.get_by_test_id("needs-review").wait_for()  # drawn once the page's fetch answers
    assert page.get_by_test_id("needs-review").count() == 1
    # ... refunds it through VNPay (everything: the amount left empty) ...
    submit_refund(page, "")
    page.get_by_test_id("refund-pending").wait_for()
    assert page.get_by_test_id("refund-row").get_attribute("data-status") == "REFUND_STATUS_PENDING"
    assert settle_refunds(stack) == 1
    page.wait_for_selector("[data-testid=refund-row][data-status=REFUND_STATUS_SUCCEEDED]")
    assert page.get_by_test_id("refunded-amount").inner_text() == price
    books = ledger(stack, reference)
    assert books["refunded"] == amount
    assert [(r["amount"], r["status"]) for r in books["refunds"]] == [(amount, "succeeded")]
    # ... and closes the review: nothing is left to refund, so no second refund.
    page.get_by_label("Ghi chú").fill("stock gone, refunded")
    page.get_by_test_id("resolve-refund").click()
    page.wait_for_selector("[data-testid=needs-review]", state="detached")
    assert page.get_by_test_id("refund-row").count() == 1
    resolution = page.get_by_test_id("review-resolution")
    assert resolution.get_attribute("data-resolution") == "REVIEW_ACTION_REFUND"
    assert resolution.inner_text() == "đã đóng: hoàn tiền · stock gone, refunded"
    page.screenshot(path=stack.screenshots / "console-payment.png", full_page=True)
    status, body = stack.call(
        "GET", f"/admin/v1/payments/{payment['id']}", token=stack.keys.token("ops", admin=True)
    )
    assert status == 200 and body["payment"]["review_resolution"] == "REVIEW_ACTION_REFUND"
    assert len(ledger(stack, reference)["refunds"]) == 1
    page.goto(f"{stack.base_url}/console/")
    page.locator("main h2").wait_for()
    assert page.get_by_test_id("review-row").filter(has_text=f"#{order['order_code']}").count() == 0

    # The order left NEEDS_REVIEW: it stays expired, its money given back.
    got = order_status(stack, user, order["id"], "ORDER_STATUS_EXPIRED")
    assert got["refunded_amount"] == str(amount)
    assert stock_of(stack, variant) == 0  # never taken twice, never below zero
    badge = shop_order_page(page, stack, user, order["id"], "ORDER_STATUS_EXPIRED")
    assert badge.inner_text() == "Đã hết hạn"
    assert page.get_by_test_id("order-refunded").inner_text() == price
