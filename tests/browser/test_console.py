"""The operator console in a real browser, and the admin API's gate: a late
payment found in the review queue, refunded (payOS has no refund API: a
manual refund with the transfer's reference), its review resolved, its
callback replayed (dry run, then applied: a duplicate changes nothing)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
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

    # Refund: payOS has no refund API, so the operator records the transfer.
    page.get_by_test_id("refund-amount").fill("89000")
    page.get_by_label("Mã chuyển khoản (payOS, COD: hoàn tiền thủ công)").fill("FT26001234")
    page.get_by_test_id("refund-submit").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=refunded-amount]').textContent === '89.000 ₫'"
    )
    assert "SUCCEEDED" in page.get_by_test_id("refund-row").inner_text()
    page.screenshot(path=shop_stack.screenshots / "console-payment.png", full_page=True)

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
