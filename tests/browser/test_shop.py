"""The shopper's pages in a real browser: buy, pay on the simulator's
checkout page with each gateway, come back to a live status; and "Pay
again" after a failed payment."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import ShopStack

pytestmark = pytest.mark.slow

GATEWAYS = ["PROVIDER_VNPAY", "PROVIDER_MOMO", "PROVIDER_ZALOPAY", "PROVIDER_PAYOS"]


def sign_in(page: Any, stack: ShopStack, user: str) -> None:
    page.goto(f"{stack.base_url}/shop/dev-login?user={user}")
    page.wait_for_url(f"{stack.base_url}/shop/")
    page.evaluate("localStorage.removeItem('payments.cart')")


def place_order(page: Any, stack: ShopStack) -> str:
    """Adds the blue mug to the cart, checks out; returns the order number."""
    page.goto(f"{stack.base_url}/shop/")
    row = page.locator("[data-testid=product-row][data-variant=mug-blue]")
    assert "89.000 ₫" in row.inner_text()
    row.get_by_test_id("add-to-cart").click()
    page.get_by_label("Người nhận").fill("Nguyễn Văn A")
    page.get_by_label("Số điện thoại").fill("0901234567")
    page.get_by_label("Địa chỉ giao hàng").fill("1 Lê Lợi, Quận 1, TP.HCM")
    page.get_by_test_id("checkout-submit").click()
    page.wait_for_url("**/shop/orders/*")
    number = page.get_by_test_id("order-number").inner_text()
    assert number.isdigit()
    assert page.get_by_test_id("order-amount").inner_text() == "89.000 ₫"
    return str(number)


def status_of(page: Any) -> str:
    return str(page.get_by_test_id("order-status").get_attribute("data-status"))


def pay_with(page: Any, provider: str, button: str) -> None:
    """Pay (again) with `provider`, press `button` on the simulator's page,
    and wait to be back on the order page."""
    page.get_by_test_id("provider-select").select_option(provider)
    page.get_by_test_id("pay-again").click()
    page.wait_for_selector(f"button.{button}")  # the simulator's checkout page
    page.click(f"button.{button}")
    page.wait_for_url("**/shop/orders/*returned=1*")


def wait_status(page: Any, status: str) -> None:
    page.wait_for_selector(f"[data-testid=order-status][data-status={status}]")


@pytest.mark.parametrize("provider", GATEWAYS)
def test_shopper_buys_and_pays_with_each_gateway(
    page: Any, shop_stack: ShopStack, user: str, provider: str
) -> None:
    sign_in(page, shop_stack, user)
    place_order(page, shop_stack)
    assert status_of(page) == "ORDER_STATUS_PENDING_PAYMENT"
    pay_with(page, provider, "pay")
    # The live status: the page polls until the callback has made the order PAID.
    wait_status(page, "ORDER_STATUS_PAID")
    assert page.get_by_test_id("order-status").inner_text() == "Đã thanh toán"
    assert page.get_by_test_id("pay-again").count() == 0
    page.screenshot(path=shop_stack.screenshots / f"paid-{provider.lower()}.png", full_page=True)


def test_pay_again_after_a_failed_payment(page: Any, shop_stack: ShopStack, user: str) -> None:
    sign_in(page, shop_stack, user)
    number = place_order(page, shop_stack)
    pay_with(page, "PROVIDER_VNPAY", "fail")
    wait_status(page, "ORDER_STATUS_PAYMENT_FAILED")
    assert page.get_by_test_id("pay-again").inner_text() == "Thanh toán lại"
    page.screenshot(path=shop_stack.screenshots / "failed.png", full_page=True)
    pay_with(page, "PROVIDER_MOMO", "pay")
    wait_status(page, "ORDER_STATUS_PAID")
    assert page.get_by_test_id("order-number").inner_text() == number
    # The order list shows it paid, and the English toggle words it in English.
    page.goto(f"{shop_stack.base_url}/shop/orders")
    page.get_by_role("button", name="English").click()
    row = page.get_by_test_id("order-row").filter(has_text=f"#{number}")
    assert "Paid" in row.inner_text()
    assert "89.000 ₫" in row.inner_text()
    page.get_by_role("button", name="Tiếng Việt").click()


def test_cash_on_delivery(page: Any, shop_stack: ShopStack, user: str) -> None:
    """COD has no checkout page: the order page follows the order until it
    waits for the courier, and offers no payment any more."""
    sign_in(page, shop_stack, user)
    place_order(page, shop_stack)
    page.get_by_test_id("provider-select").select_option("PROVIDER_COD")
    page.get_by_test_id("pay-again").click()
    page.wait_for_url("**/shop/orders/*returned=1")
    wait_status(page, "ORDER_STATUS_AWAITING_DELIVERY_PAYMENT")
    assert page.get_by_test_id("order-status").inner_text() == "Thanh toán khi nhận hàng"
    assert page.get_by_test_id("pay-again").count() == 0


def test_dev_login_refused_without_a_valid_user(page: Any, shop_stack: ShopStack) -> None:
    response = page.goto(f"{shop_stack.base_url}/shop/dev-login?user=%3Cscript%3E")
    assert response.status == 400
    assert "user must be" in page.inner_text("body")


def test_the_shop_works_at_phone_width(browser_context: Any, shop_stack: ShopStack, user: str) -> None:
    page = browser_context.new_page()
    page.set_viewport_size({"width": 375, "height": 740})
    try:
        sign_in(page, shop_stack, user)
        place_order(page, shop_stack)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the order page scrolls sideways at phone width ({width} px)"
        page.screenshot(path=shop_stack.screenshots / "order-phone.png", full_page=True)
    finally:
        page.close()
