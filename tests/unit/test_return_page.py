"""The shopper's result page: words, numbers, escaping, refreshing; and the
payOS description that keeps the order number whole."""

from __future__ import annotations

from payment_service.entrypoints.pages import choose_language, format_amount, return_renderer
from payment_service.gateways.payos.protocol import DESCRIPTION_MAX_LEN, short_description
from payment_service.gateways.port import RawCallback
from payment_service.service_layer.callbacks import ReturnView


def raw(query: str = "", accept_language: str = "") -> RawCallback:
    headers = {"accept-language": accept_language} if accept_language else {}
    return RawCallback("/webhooks/momo/return", query.encode(), b"", "", headers)


def view(status: str = "processing", description: str = "Thanh toan don hang 100015") -> ReturnView:
    return ReturnView(True, "0b0f", status, "x", 89_000, "VND", description, "MOMO")


def test_amounts_are_written_the_vietnamese_way() -> None:
    assert format_amount(89_000, "VND") == "89.000 ₫"
    assert format_amount(1_234_567, "VND") == "1.234.567 ₫"
    assert format_amount(1_050, "USD") == "10,50 USD"


def test_vietnamese_unless_english_is_asked_for() -> None:
    assert choose_language(b"", "") == "vi"
    assert choose_language(b"a=1&lang=en", "vi") == "en"
    assert choose_language(b"", "en-US,en;q=0.9") == "en"
    assert choose_language(b"lang=fr", "fr-FR, vi;q=0.5") == "vi"


def test_the_page_shows_the_order_number_amount_and_refreshes_until_final() -> None:
    render = return_renderer("", "https://shop.example/")
    page = render(view(), raw()).body.decode()
    assert "<dd>100015</dd>" in page and "89.000 ₫" in page and "Đang xác nhận" in page
    assert "location.reload" in page and 'http-equiv="refresh"' in page
    assert 'href="https://shop.example/"' in page and "lang=en" in page
    final = render(view("paid"), raw("lang=en")).body.decode()
    assert "Payment received" in final and "location.reload" not in final


def test_everything_shown_is_escaped() -> None:
    hostile = '<script>alert(1)</script>"'
    render = return_renderer("", '"><script>x</script>')
    page = render(view("failed", hostile), raw("q=%22%3E%3Cscript%3E")).body.decode()
    assert "<script>alert" not in page and "<script>x" not in page and '"><script' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_payos_description_keeps_the_order_number() -> None:
    assert short_description("Thanh toan don hang 100015") == "Don hang 100015"
    assert short_description("Thanh toan don hang 10001") == "Thanh toan don hang 10001"
    assert short_description("x" * 40) == "x" * DESCRIPTION_MAX_LEN
    assert short_description("Thanh toan " + "9" * 30) == "9" * DESCRIPTION_MAX_LEN
    assert short_description("Don hang 12345", limit=9) == "DH 12345"
    assert short_description("Don hang 123456", limit=8) == "DH123456"
