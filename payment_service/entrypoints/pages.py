"""The page a shopper's browser lands on after any gateway (every gateway's
return route ends here), or a redirect to the shop's own front end when
PAYMENT_RESULT_URL is set.

One page for all gateways: Vietnamese by default, English with ``?lang=en``
(or an Accept-Language that prefers English); the order, the amount as
``89.000 ₫`` and the status; while the result is not final it reloads itself
with a growing delay; a link back to the shop (SHOP_URL). Everything shown is
escaped."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qsl, urlencode

from payment_service.domain.currency import minor_units
from payment_service.gateways.port import HttpReply, RawCallback
from payment_service.service_layer.callbacks import ReturnView

LANGUAGES: Final = ("vi", "en")

# status -> (title, explanation), per language.
_TEXT: Final[dict[str, dict[str, tuple[str, str]]]] = {
    "vi": {
        "paid": ("Thanh toán thành công", "Cảm ơn bạn! Chúng tôi đã nhận được tiền."),
        "processing": (
            "Đang xác nhận thanh toán",
            "Chúng tôi đang chờ xác nhận từ ngân hàng. Trang sẽ tự cập nhật.",
        ),
        "failed": ("Thanh toán chưa thành công", "Giao dịch không hoàn tất. Bạn có thể thử thanh toán lại."),
        "review": (
            "Đã nhận thanh toán",
            "Tiền đến sau khi đơn hàng đã đóng; chúng tôi sẽ liên hệ với bạn.",
        ),
        "unknown": ("Chưa tra cứu được", "Chúng tôi chưa tra cứu được giao dịch này. Trang sẽ tự thử lại."),
        "not_found": ("Không tìm thấy giao dịch", "Chúng tôi không tìm thấy giao dịch này."),
        "invalid": ("Không xác minh được kết quả", "Chúng tôi không xác minh được kết quả thanh toán này."),
    },
    "en": {
        "paid": ("Payment received", "Thank you! We have received your payment."),
        "processing": (
            "Confirming your payment",
            "We are waiting for the bank to confirm. This page updates itself.",
        ),
        "failed": ("Payment not completed", "The payment did not go through. You can try again."),
        "review": ("Payment received", "The money arrived after the order closed; we will contact you."),
        "unknown": (
            "Not looked up yet",
            "We could not look this payment up right now. This page retries itself.",
        ),
        "not_found": ("Payment not found", "We do not know this payment."),
        "invalid": ("Result not verified", "We could not verify this payment result."),
    },
}
_LABELS: Final = {
    "vi": {
        "order": "Đơn hàng",
        "amount": "Số tiền",
        "status": "Trạng thái",
        "shop": "Quay lại cửa hàng",
        "other": "English",
        "note": "Nội dung",
    },
    "en": {
        "order": "Order",
        "amount": "Amount",
        "status": "Status",
        "shop": "Back to the shop",
        "other": "Tiếng Việt",
        "note": "Description",
    },
}
# The order service writes "Thanh toan don hang <number>"; the payment
# service does not store the order's number on its own.
_ORDER_NUMBER: Final = re.compile(r"(\d{3,})\s*$")

# Reloads while the result is not final: 2 s, then 1.5 times longer each
# time, at most 30 s apart and 20 times; without JavaScript every 10 s.
_REFRESH: Final = """<script>(function(){var k="rp:"+location.pathname+location.search;
var n=+(sessionStorage.getItem(k)||0);if(n>=20)return;sessionStorage.setItem(k,n+1);
setTimeout(function(){location.reload()},Math.min(2000*Math.pow(1.5,n),30000));})();</script>
<noscript><meta http-equiv="refresh" content="10"></noscript>"""

_PAGE: Final = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
dt{{color:#555}}dd{{margin:0 0 .6rem;font-weight:600}}</style>
</head><body data-status="{status}"><h1>{title}</h1><p>{explanation}</p>
<dl>{details}</dl>
<p><a href="{shop}">{shop_label}</a> &middot;
<a href="{other_href}" hreflang="{other_lang}">{other_label}</a></p>
</body></html>
"""


def format_amount(amount: int, currency: str) -> str:
    """89000 VND -> "89.000 ₫": Vietnamese grouping, minor units honoured."""
    try:
        exponent = minor_units(currency)
    except KeyError:
        exponent = 0
    whole, fraction = divmod(amount, 10**exponent) if exponent else (amount, 0)
    text = f"{whole:,}".replace(",", ".")
    if exponent:
        text += "," + str(fraction).zfill(exponent)
    return f"{text} {'₫' if currency == 'VND' else currency}".strip()


def choose_language(query: bytes, accept_language: str) -> str:
    """``lang`` in the query wins; then the first of vi/en in Accept-Language; vi."""
    for key, value in parse_qsl(query.decode("utf-8", "replace"), max_num_fields=64):
        if key == "lang" and value in LANGUAGES:
            return value
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "vi"


def _switch_language(raw: RawCallback, lang: str) -> str:
    pairs = [
        (k, v)
        for k, v in parse_qsl(raw.query.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=64)
        if k != "lang"
    ]
    return raw.path + "?" + urlencode([*pairs, ("lang", lang)])


def render_page(view: ReturnView, raw: RawCallback, shop_url: str) -> str:
    lang = choose_language(raw.query, raw.headers.get("accept-language", ""))
    title, explanation = _TEXT[lang].get(view.status, _TEXT[lang]["unknown"])
    labels = _LABELS[lang]
    match = _ORDER_NUMBER.search(view.description)
    rows: list[tuple[str, str]] = []
    if match or view.order_id:
        rows.append((labels["order"], match.group(1) if match else view.order_id))
    if view.description and not match:
        rows.append((labels["note"], view.description))
    if view.amount > 0:
        rows.append((labels["amount"], format_amount(view.amount, view.currency)))
    rows.append((labels["status"], title))
    other = "en" if lang == "vi" else "vi"
    e = html.escape
    return _PAGE.format(
        lang=lang,
        title=e(title),
        explanation=e(explanation),
        status=e(view.status),
        refresh="" if view.final else _REFRESH,
        details="".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows),
        shop=e(shop_url or "/"),
        shop_label=e(labels["shop"]),
        other_href=e(_switch_language(raw, other)),
        other_lang=other,
        other_label=e(labels["other"]),
    )


def return_renderer(result_url: str, shop_url: str = "/") -> Callable[[ReturnView, RawCallback], HttpReply]:
    def render(view: ReturnView, raw: RawCallback) -> HttpReply:
        if result_url and view.verified:
            separator = "&" if "?" in result_url else "?"
            location = result_url + separator + urlencode({"order_id": view.order_id, "status": view.status})
            body = f'<a href="{html.escape(location)}">Continue</a>'.encode()
            return HttpReply(303, "text/html; charset=utf-8", body, (("location", location),))
        page = render_page(view, raw, shop_url)
        # Never cached: the page changes as the payment settles.
        headers = (("cache-control", "no-store"),)
        return HttpReply(200 if view.verified else 400, "text/html; charset=utf-8", page.encode(), headers)

    return render
