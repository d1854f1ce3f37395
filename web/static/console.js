// The operator console: the review queue, search, a payment's page and its
// actions. Every call goes to /admin/v1/ through the ingress, which lets
// through only tokens with the admin claim.
"use strict";

window.TEXT = {
  vi: {
    consoleTitle: "Bảng điều khiển thanh toán", queue: "Cần kiểm tra", searchLabel: "Số đơn, mã thanh toán hoặc mã cổng",
    search: "Tìm", results: "Kết quả", noResults: "Không tìm thấy thanh toán nào.", emptyQueue: "Không có thanh toán nào cần kiểm tra.",
    reason: "Lý do", order: "Đơn hàng", amount: "Số tiền", age: "Đã chờ", payment: "Thanh toán", status: "Trạng thái",
    gateway: "Cổng", attempts: "Các lần thanh toán", attempt: "Lần", refunds: "Hoàn tiền", callbacks: "Thông báo từ cổng",
    timeline: "Dòng thời gian", actions: "Thao tác", refundAmount: "Số tiền hoàn (để trống: hoàn hết phần còn lại)",
    refundReason: "Lý do hoàn tiền", transferRef: "Mã chuyển khoản (payOS, COD: hoàn tiền thủ công)", refund: "Hoàn tiền",
    honour: "Giữ tiền (đóng kiểm tra)", note: "Ghi chú", reconcile: "Hỏi lại cổng thanh toán", replay: "Chạy lại (thử)",
    apply: "Áp dụng", kind: "Loại", verified: "Xác minh", outcome: "Kết quả", time: "Thời gian", type: "Sự kiện",
    refunded: "Đã hoàn", needsReview: "Cần kiểm tra", yes: "có", no: "không", done: "Xong.", wouldChange: "Sẽ thay đổi",
    nothingChanges: "Không có gì thay đổi.", signIn: "Cần token quản trị (mở /console/dev-login?user=... khi phát triển).", error: "Lỗi",
    restock: "Trả hàng về kho (đơn hàng không giao)", refundRefused: "Không hoàn tiền được",
    resolveRefund: "Hoàn phần còn lại và đóng kiểm tra", pendingHint: "Cổng đang xử lý; trạng thái sẽ cập nhật khi cổng trả lời.",
    REFUND_IN_PROGRESS: "Một lần hoàn tiền khác của giao dịch này đang chờ cổng xử lý (VNPay chỉ hoàn lần lượt). Thử lại khi nó xong.",
    REFUND_EXCEEDS_CAPTURED: "Số tiền hoàn lớn hơn số tiền còn lại có thể hoàn.",
    MANUAL_REFUND: "Không hoàn tiền được qua cổng này (không có API hoàn tiền, hoặc không rõ tài khoản người trả): chuyển khoản cho người mua rồi nhập mã chuyển khoản.",
    NOT_CAPTURED: "Thanh toán này chưa nhận được tiền.", NOT_IN_REVIEW: "Thanh toán này không còn cần kiểm tra.",
    review: "Kiểm tra", REVIEW_ACTION_HONOUR: "đã đóng: giữ tiền", REVIEW_ACTION_REFUND: "đã đóng: hoàn tiền",
    minutes: (m) => (m < 60 ? `${m} phút` : m < 2880 ? `${Math.floor(m / 60)} giờ` : `${Math.floor(m / 1440)} ngày`),
  },
  en: {
    consoleTitle: "Payments console", queue: "Review queue", searchLabel: "Order number, payment or gateway id",
    search: "Search", results: "Results", noResults: "No payment found.", emptyQueue: "Nothing needs review.",
    reason: "Reason", order: "Order", amount: "Amount", age: "Waiting", payment: "Payment", status: "Status",
    gateway: "Gateway", attempts: "Attempts", attempt: "Attempt", refunds: "Refunds", callbacks: "Gateway callbacks",
    timeline: "Timeline", actions: "Actions", refundAmount: "Amount to refund (empty: everything left)",
    refundReason: "Refund reason", transferRef: "Transfer reference (payOS, COD: manual refunds)", refund: "Refund",
    honour: "Honour (keep the money)", note: "Note", reconcile: "Ask the gateway now", replay: "Replay (dry run)",
    apply: "Apply", kind: "Kind", verified: "Verified", outcome: "Outcome", time: "Time", type: "Event",
    refunded: "Refunded", needsReview: "Needs review", yes: "yes", no: "no", done: "Done.", wouldChange: "Would change",
    nothingChanges: "Nothing changes.", signIn: "This needs an admin token (in development open /console/dev-login?user=...).", error: "Error",
    restock: "Return the stock (the order will not ship)", refundRefused: "Refund refused",
    resolveRefund: "Refund what is left and close the review", pendingHint: "The gateway is processing it; the status updates when the gateway answers.",
    REFUND_IN_PROGRESS: "Another refund of this transaction is still pending at the gateway (VNPay refunds one at a time). Try again once it is final.",
    REFUND_EXCEEDS_CAPTURED: "The amount is more than what is left to refund.",
    MANUAL_REFUND: "This payment cannot go back through its gateway (no refund API, or the payer's account is unknown): transfer the money to the buyer, then enter the transfer's reference.",
    NOT_CAPTURED: "This payment took no money.", NOT_IN_REVIEW: "This payment no longer needs review.",
    review: "Review", REVIEW_ACTION_HONOUR: "closed: money kept", REVIEW_ACTION_REFUND: "closed: refunded",
    minutes: (m) => (m < 60 ? `${m} min` : m < 2880 ? `${Math.floor(m / 60)} h` : `${Math.floor(m / 1440)} days`),
  },
};

const app = document.getElementById("app");

// The reason the API gives (google.rpc.ErrorInfo in the details), if any.
function errorReason(error) {
  const details = (error && error.body && error.body.details) || [];
  const info = details.find((d) => d && d.reason);
  return info ? info.reason : "";
}

// A refused action, said plainly: what the operator can do about it, then
// the service's own words (which name the amounts) and its reason code.
function actionError(target, title, error) {
  if (!(error instanceof ApiError) || error.status === 401 || error.status === 403) return showError(target, error);
  const reason = errorReason(error);
  const known = reason && reason in window.TEXT.en;
  target.replaceChildren(el("div", { class: "error", role: "alert", "data-testid": "action-error", "data-reason": reason || undefined },
    el("p", {}, title + (known ? ": " + t(reason) : "")),
    el("p", { class: "muted" }, error.message + (reason ? " (" + reason + ")" : ""))));
}

// The order service writes "Thanh toan don hang 100015": the number is the last word.
function orderNumber(payment) {
  const match = /(\d+)\s*$/.exec(payment.description || "");
  return match ? match[1] : "";
}

function badge(status) {
  return el("span", { class: "status", "data-status": status }, status.replace(/^[A-Z]+_STATUS_/, ""));
}

function provider(p) { return (p.provider || "").replace("PROVIDER_", ""); }

function paymentLink(p, text) {
  return el("a", { href: "/console/payments/" + encodeURIComponent(p.id) }, text);
}

async function queuePage() {
  const data = await api("GET", "/admin/v1/reviews?page_size=100");
  const payments = data.payments || [];
  app.replaceChildren(el("h2", {}, t("queue")), payments.length === 0 ? el("p", {}, t("emptyQueue")) :
    el("table", { class: "stack" },
      el("thead", {}, el("tr", {}, ["reason", "order", "gateway", "amount", "age"].map((k) => el("th", { class: k === "amount" ? "num" : undefined }, t(k))))),
      el("tbody", {}, payments.map((p) => el("tr", { "data-testid": "review-row", "data-payment": p.id },
        el("td", { "data-label": t("reason") }, paymentLink(p, p.review_reason || t("needsReview"))),
        el("td", { "data-label": t("order"), "data-testid": "review-order" }, "#" + orderNumber(p)),
        el("td", { "data-label": t("gateway") }, provider(p)),
        el("td", { class: "num", "data-label": t("amount") }, formatVnd(p.amount)),
        el("td", { "data-label": t("age") }, t("minutes", Math.max(0, Math.round((Date.now() - Date.parse(p.update_time)) / 60000)))))))));
}

async function searchPage(query) {
  document.getElementById("q").value = query;
  const data = await api("GET", "/admin/v1/payments?query=" + encodeURIComponent(query));
  const payments = data.payments || [];
  app.replaceChildren(el("h2", {}, t("results")), payments.length === 0 ? el("p", {}, t("noResults")) : paymentsTable(payments, "search-row"));
}

function paymentsTable(payments, testid, current) {
  return el("table", { class: "stack" },
    el("thead", {}, el("tr", {}, ["attempt", "order", "gateway", "status", "amount"].map((k) => el("th", {}, t(k))))),
    el("tbody", {}, payments.map((p) => el("tr", { "data-testid": testid, "aria-current": p.id === current ? "page" : undefined },
      el("td", { "data-label": t("attempt") }, paymentLink(p, "#" + p.attempt + " " + p.payment_intent_id)),
      el("td", { "data-label": t("order") }, "#" + orderNumber(p)),
      el("td", { "data-label": t("gateway") }, provider(p)),
      el("td", { "data-label": t("status") }, badge(p.status), p.needs_review ? " ⚠ " + t("needsReview") : ""),
      el("td", { class: "num", "data-label": t("amount") }, formatVnd(p.amount))))));
}

// While a refund waits for its gateway (VNPay, ZaloPay answer later; the
// service asks them on its own schedule), the page asks again every 1 s
// growing to 15 s and redraws when a refund changed, unless the operator is
// filling in a form (then it waits until the fields are empty again).
let refundWatch = null;
function watchRefunds(id, detail) {
  clearTimeout(refundWatch);
  const state = (d) => JSON.stringify([(d.refunds || []).map((r) => [r.id, r.status]), d.payment.refunded_amount]);
  if (!(detail.refunds || []).some((r) => r.status === "REFUND_STATUS_PENDING")) return;
  const seen = state(detail);
  let delay = 1000;
  const poll = async () => {
    try {
      const fresh = await api("GET", "/admin/v1/payments/" + encodeURIComponent(id) + "/detail");
      const busy = [...app.querySelectorAll("input, textarea")].some((i) => (i.type === "checkbox" ? i.checked : i.value));
      if (state(fresh) !== seen && !busy) return void (await paymentPage(id));
    } catch (_) {
      // A failed poll is retried later; the page keeps what it shows.
    }
    delay = Math.min(delay * 1.5, 15000);
    refundWatch = setTimeout(poll, delay);
  };
  refundWatch = setTimeout(poll, delay);
}

async function paymentPage(id) {
  const d = await api("GET", "/admin/v1/payments/" + encodeURIComponent(id) + "/detail");
  const p = d.payment;
  const message = el("div", { role: "status" });
  const done = (text) => message.replaceChildren(el("p", { class: "notice" }, text));
  const fail = (e) => showError(message, e);
  const reload = () => paymentPage(id).then(() => app.prepend(el("p", { class: "notice", role: "status" }, t("done"))));

  const refundKey = newKey();
  const refundError = el("div", { "aria-live": "assertive" });
  const refundForm = el("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const f = new FormData(refundForm);
      const amount = String(f.get("amount") || "").replace(/\D/g, "");
      const button = refundForm.querySelector("button[type=submit]");
      button.disabled = true;
      refundError.replaceChildren();
      try {
        // A refused refund writes nothing, so the same key may be sent again.
        await api("POST", "/admin/v1/payments/" + encodeURIComponent(id) + ":refund", {
          amount: amount ? Number(amount) : 0, reason: f.get("reason") || "", request_id: refundKey,
          transfer_reference: f.get("transfer_reference") || "", restock: f.get("restock") === "on",
        });
        await reload();
      } catch (e) {
        actionError(refundError, t("refundRefused"), e);
        button.disabled = false;
        refundForm.querySelector("input").focus();
      }
    },
  },
    el("label", { for: "refund-amount" }, t("refundAmount")),
    el("input", { id: "refund-amount", name: "amount", inputmode: "numeric", "data-testid": "refund-amount", style: "max-width:14rem" }),
    el("label", { for: "refund-reason" }, t("refundReason")),
    el("input", { id: "refund-reason", name: "reason", maxlength: 255, pattern: "[A-Za-z0-9 .\\-_:/,]*" }),
    el("label", { for: "transfer-ref" }, t("transferRef")),
    el("input", { id: "transfer-ref", name: "transfer_reference", maxlength: 100 }),
    el("p", { class: "check" }, el("input", { type: "checkbox", id: "refund-restock", name: "restock", "data-testid": "refund-restock" }),
      el("label", { for: "refund-restock" }, t("restock"))),
    el("p", {}, el("button", { type: "submit", "data-testid": "refund-submit" }, t("refund"))),
    refundError);

  const resolveKey = newKey();  // one review, one resolution: both buttons send the same key
  const note = el("input", { id: "resolve-note", maxlength: 255 });
  const review = p.needs_review ? el("div", {},
    el("label", { for: "resolve-note" }, t("note")), note,
    el("p", {}, el("button", {
      type: "button", "data-testid": "resolve-honour",
      onclick: async () => {
        try {
          await api("POST", "/admin/v1/payments/" + encodeURIComponent(id) + ":resolveReview", {
            action: "REVIEW_ACTION_HONOUR", note: note.value, request_id: resolveKey,
          });
          await reload();
        } catch (e) { actionError(message, t("error"), e); }
      },
    }, t("honour")), " ", el("button", {
      type: "button", class: "secondary", "data-testid": "resolve-refund",
      onclick: async () => {
        try {
          await api("POST", "/admin/v1/payments/" + encodeURIComponent(id) + ":resolveReview", {
            action: "REVIEW_ACTION_REFUND", note: note.value, request_id: resolveKey,
          });
          await reload();
        } catch (e) { actionError(message, t("error"), e); }
      },
    }, t("resolveRefund")))) : "";

  const reconcile = el("button", {
    type: "button", class: "secondary", "data-testid": "reconcile-button",
    onclick: async () => {
      try {
        const r = await api("POST", "/admin/v1/payments/" + encodeURIComponent(id) + ":reconcile", {});
        await reload();
        app.prepend(el("p", { class: "notice" }, t("outcome") + ": " + r.outcome));
      } catch (e) { fail(e); }
    },
  }, t("reconcile"));

  const replay = (entry) => async () => {
    try {
      const r = await api("POST", "/admin/v1/callbacks/" + entry.id + ":replay", { dry_run: true });
      const changes = r.changes || [];
      message.replaceChildren(el("div", { class: "notice", "data-testid": "replay-result" },
        el("p", {}, t("outcome") + ": " + r.outcome),
        changes.length ? el("ul", {}, changes.map((c) => el("li", {}, c))) : el("p", {}, t("nothingChanges")),
        el("button", {
          type: "button", "data-testid": "replay-apply",
          onclick: async () => {
            try {
              await api("POST", "/admin/v1/callbacks/" + entry.id + ":replay", { dry_run: false });
              await reload();
            } catch (e) { fail(e); }
          },
        }, t("apply"))));
      message.querySelector("button").focus();
    } catch (e) { fail(e); }
  };

  app.replaceChildren(
    el("h2", {}, t("payment") + " ", el("code", {}, p.payment_intent_id)),
    el("p", {}, badge(p.status), " ", p.needs_review ? el("strong", { "data-testid": "needs-review" }, "⚠ " + t("needsReview") + ": " + p.review_reason) : ""),
    el("dl", {},
      el("dt", {}, t("order")), el("dd", {}, "#" + orderNumber(p) + " ", el("code", {}, p.order_id)),
      el("dt", {}, t("gateway")), el("dd", {}, provider(p) + " · " + p.provider_reference + (p.provider_transaction_id ? " · " + p.provider_transaction_id : "")),
      el("dt", {}, t("amount")), el("dd", { "data-testid": "payment-amount" }, formatVnd(p.amount)),
      el("dt", {}, t("refunded")), el("dd", { "data-testid": "refunded-amount" }, formatVnd(p.refunded_amount)),
      p.review_resolution && p.review_resolution !== "REVIEW_ACTION_UNSPECIFIED" ? [el("dt", {}, t("review")),
        el("dd", { "data-testid": "review-resolution", "data-resolution": p.review_resolution },
          t(p.review_resolution) + (p.review_note ? " · " + p.review_note : ""))] : ""),
    message,
    el("h3", {}, t("actions")), review, refundForm, el("p", {}, reconcile),
    el("h3", {}, t("attempts")), paymentsTable(d.attempts || [], "attempt-row", p.id),
    el("h3", {}, t("refunds")),
    (d.refunds || []).some((r) => r.status === "REFUND_STATUS_PENDING") ? el("p", { class: "muted", "data-testid": "refund-pending" }, t("pendingHint")) : "",
    el("table", { class: "stack" }, el("tbody", {}, (d.refunds || []).map((r) => el("tr", { "data-testid": "refund-row", "data-status": r.status, "data-refund": r.id },
      el("td", { "data-label": t("time") }, formatTime(r.create_time)),
      el("td", { "data-label": t("status") }, badge(r.status)),
      el("td", { class: "num", "data-label": t("amount") }, formatVnd(r.amount)),
      el("td", { "data-label": t("reason") }, r.reason + (r.provider_refund_id ? " · " + r.provider_refund_id : "") +
        (r.restock ? " · " + t("restock") : "") + (r.failure_reason ? " · " + r.failure_reason : "")))))),
    el("h3", {}, t("callbacks")),
    el("table", { class: "stack" }, el("tbody", {}, (d.callbacks || []).map((c) => el("tr", { "data-testid": "callback-row" },
      el("td", { "data-label": t("time") }, formatTime(c.receive_time)),
      el("td", { "data-label": t("kind") }, c.kind),
      el("td", { "data-label": t("verified") }, c.verified ? t("yes") : t("no") + " " + c.verify_error),
      el("td", { "data-label": t("outcome") }, c.outcome),
      el("td", {}, c.replayable ? el("button", { type: "button", class: "secondary", "data-testid": "replay-button", onclick: replay(c) }, t("replay")) : ""))))),
    el("h3", {}, t("timeline")),
    el("ol", {}, (d.events || []).map((e) => el("li", { "data-testid": "timeline-event" }, formatTime(e.create_time) + " — " + e.type + " → " + e.status.replace("PAYMENT_STATUS_", "")))),
  );
  watchRefunds(id, d);
}

async function route() {
  setupChrome();
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    location.assign("/console/search?q=" + encodeURIComponent(document.getElementById("q").value.trim()));
  });
  const path = location.pathname.replace(/\/+$/, "");
  const match = path.match(/^\/console\/payments\/([^/]+)$/);
  try {
    if (match) await paymentPage(decodeURIComponent(match[1]));
    else if (path === "/console/search") await searchPage(new URLSearchParams(location.search).get("q") || "");
    else await queuePage();
  } catch (e) {
    showError(app, e);
  }
}

route();
