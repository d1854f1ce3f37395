// The shop: products and cart, checkout, the order list, and the order page
// with "Pay again". Vietnamese by default; the toggle switches to English.
"use strict";

window.TEXT = {
  vi: {
    shopTitle: "Cửa hàng", products: "Sản phẩm", orders: "Đơn hàng", product: "Sản phẩm", price: "Giá",
    stock: "Còn", quantity: "Số lượng", add: "Thêm vào giỏ", cart: "Giỏ hàng", emptyCart: "Giỏ hàng trống.",
    total: "Tổng cộng", receiverName: "Người nhận", receiverPhone: "Số điện thoại",
    shippingAddress: "Địa chỉ giao hàng", note: "Ghi chú", checkout: "Đặt hàng", order: "Đơn hàng",
    status: "Trạng thái", amount: "Số tiền", items: "Sản phẩm", created: "Ngày đặt", noOrders: "Chưa có đơn hàng.",
    gateway: "Cổng thanh toán", payAgain: "Thanh toán lại", pay: "Thanh toán", remove: "Xoá",
    signIn: "Bạn cần đăng nhập (mở /shop/dev-login?user=... khi phát triển).", error: "Lỗi",
    checking: "Đang xác nhận thanh toán, trang sẽ tự cập nhật…", added: (name) => `Đã thêm ${name} vào giỏ.`,
    reason: "Lý do",
    ORDER_STATUS_PENDING_PAYMENT: "Chờ thanh toán", ORDER_STATUS_PAID: "Đã thanh toán",
    ORDER_STATUS_PAYMENT_FAILED: "Thanh toán thất bại", ORDER_STATUS_CANCELED: "Đã huỷ",
    ORDER_STATUS_EXPIRED: "Đã hết hạn", ORDER_STATUS_NEEDS_REVIEW: "Đang được kiểm tra",
    ORDER_STATUS_AWAITING_DELIVERY_PAYMENT: "Thanh toán khi nhận hàng",
    ORDER_STATUS_REFUNDED: "Đã hoàn tiền", ORDER_STATUS_PARTIALLY_REFUNDED: "Đã hoàn tiền một phần",
    refunded: "Đã hoàn tiền",
  },
  en: {
    shopTitle: "Shop", products: "Products", orders: "Orders", product: "Product", price: "Price",
    stock: "In stock", quantity: "Quantity", add: "Add to cart", cart: "Cart", emptyCart: "Your cart is empty.",
    total: "Total", receiverName: "Receiver", receiverPhone: "Phone number",
    shippingAddress: "Shipping address", note: "Note", checkout: "Place order", order: "Order",
    status: "Status", amount: "Amount", items: "Items", created: "Placed", noOrders: "No orders yet.",
    gateway: "Payment method", payAgain: "Pay again", pay: "Pay", remove: "Remove",
    signIn: "Please sign in (in development open /shop/dev-login?user=...).", error: "Error",
    checking: "Confirming your payment; this page updates itself…", added: (name) => `Added ${name} to the cart.`,
    reason: "Reason",
    ORDER_STATUS_PENDING_PAYMENT: "Awaiting payment", ORDER_STATUS_PAID: "Paid",
    ORDER_STATUS_PAYMENT_FAILED: "Payment failed", ORDER_STATUS_CANCELED: "Canceled",
    ORDER_STATUS_EXPIRED: "Expired", ORDER_STATUS_NEEDS_REVIEW: "Being reviewed",
    ORDER_STATUS_AWAITING_DELIVERY_PAYMENT: "Cash on delivery",
    ORDER_STATUS_REFUNDED: "Refunded", ORDER_STATUS_PARTIALLY_REFUNDED: "Partly refunded",
    refunded: "Refunded",
  },
};

const PROVIDERS = [
  ["PROVIDER_VNPAY", "VNPay"], ["PROVIDER_MOMO", "MoMo"], ["PROVIDER_ZALOPAY", "ZaloPay"],
  ["PROVIDER_PAYOS", "payOS (VietQR)"], ["PROVIDER_COD", "COD"],
];
// Statuses a shopper may still pay from (cash on delivery waits for the courier).
const PAYABLE = ["ORDER_STATUS_PENDING_PAYMENT", "ORDER_STATUS_PAYMENT_FAILED"];
const CART_KEY = "payments.cart";
const app = document.getElementById("app");

function cart() {
  try { return JSON.parse(localStorage.getItem(CART_KEY)) || []; } catch (_) { return []; }
}
function saveCart(items) { localStorage.setItem(CART_KEY, JSON.stringify(items)); }

async function productsPage() {
  const data = await api("GET", "/v1/products");
  const products = data.products || [];
  const status = el("p", { role: "status", class: "muted" });
  const rows = products.map((p) => {
    const qty = el("input", { type: "number", min: 1, max: p.stock, value: 1, id: "qty-" + p.variant_id });
    return el("tr", { "data-testid": "product-row", "data-variant": p.variant_id },
      el("td", { "data-label": t("product") }, p.name),
      el("td", { class: "num", "data-label": t("price") }, formatVnd(p.price)),
      el("td", { class: "num", "data-label": t("stock") }, p.stock),
      el("td", { "data-label": t("quantity") }, el("label", { for: qty.id, class: "visually-hidden", style: "position:absolute;left:-9999px" }, t("quantity") + " " + p.name), qty),
      el("td", {}, el("button", {
        type: "button", "data-testid": "add-to-cart", disabled: p.stock < 1,
        onclick: () => {
          const items = cart();
          const found = items.find((i) => i.variant_id === p.variant_id);
          const n = Math.max(1, parseInt(qty.value, 10) || 1);
          if (found) found.quantity += n; else items.push({ variant_id: p.variant_id, name: p.name, price: Number(p.price), quantity: n });
          saveCart(items);
          status.textContent = t("added", p.name);
          renderCart(cartBox);
        },
      }, t("add"))));
  });
  const cartBox = el("section", { "aria-labelledby": "cart-title" });
  app.replaceChildren(
    el("h2", {}, t("products")),
    el("table", { class: "stack" },
      el("thead", {}, el("tr", {}, el("th", {}, t("product")), el("th", { class: "num" }, t("price")), el("th", { class: "num" }, t("stock")), el("th", {}, t("quantity")), el("th", {}, ""))),
      el("tbody", {}, rows)),
    status,
    cartBox,
  );
  renderCart(cartBox);
}

function renderCart(box) {
  const items = cart();
  const total = items.reduce((sum, i) => sum + i.price * i.quantity, 0);
  const error = el("div");
  const field = (id, key, type, extra) => [el("label", { for: id }, t(key)), el(type, { id, name: id, ...extra })];
  const form = el("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const data = new FormData(form);
        const result = await api("POST", "/v1/orders", {
          items: cart().map((i) => ({ variant_id: i.variant_id, quantity: i.quantity })),
          receiver_name: data.get("receiver_name"), receiver_phone: data.get("receiver_phone"),
          shipping_address: data.get("shipping_address"), note: data.get("note"),
        });
        saveCart([]);
        location.assign("/shop/orders/" + encodeURIComponent(result.order.id));
      } catch (e) {
        showError(error, e);
        button.disabled = false;
      }
    },
  },
    field("receiver_name", "receiverName", "input", { required: true, autocomplete: "name", maxlength: 100 }),
    field("receiver_phone", "receiverPhone", "input", { required: true, type: "tel", autocomplete: "tel", maxlength: 20 }),
    field("shipping_address", "shippingAddress", "textarea", { required: true, autocomplete: "street-address", rows: 2 }),
    field("note", "note", "input", { maxlength: 255 }),
    el("p", {}, el("button", { type: "submit", "data-testid": "checkout-submit" }, t("checkout"))),
    error);
  box.replaceChildren(
    el("h2", { id: "cart-title" }, t("cart")),
    items.length === 0 ? el("p", {}, t("emptyCart")) : el("table", { class: "stack" }, el("tbody", {},
      items.map((i, index) => el("tr", { "data-testid": "cart-row" },
        el("td", { "data-label": t("product") }, i.name),
        el("td", { class: "num", "data-label": t("quantity") }, "× " + i.quantity),
        el("td", { class: "num", "data-label": t("amount") }, formatVnd(i.price * i.quantity)),
        el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => { const all = cart(); all.splice(index, 1); saveCart(all); renderCart(box); } }, t("remove"))))),
      el("tr", {}, el("th", {}, t("total")), el("td", {}), el("td", { class: "num", "data-testid": "cart-total" }, formatVnd(total)), el("td", {})))),
    items.length === 0 ? "" : form,
  );
}

function statusBadge(order) {
  return el("span", { class: "status", "data-testid": "order-status", "data-status": order.status }, t(order.status));
}

async function ordersPage() {
  const data = await api("GET", "/v1/orders?page_size=50");
  const orders = data.orders || [];
  app.replaceChildren(el("h2", {}, t("orders")), orders.length === 0 ? el("p", {}, t("noOrders")) :
    el("table", { class: "stack" },
      el("thead", {}, el("tr", {}, el("th", {}, t("order")), el("th", {}, t("created")), el("th", {}, t("status")), el("th", { class: "num" }, t("amount")))),
      el("tbody", {}, orders.map((o) => el("tr", { "data-testid": "order-row" },
        el("td", { "data-label": t("order") }, el("a", { href: "/shop/orders/" + encodeURIComponent(o.id) }, "#" + o.order_code)),
        el("td", { "data-label": t("created") }, formatTime(o.create_time)),
        el("td", { "data-label": t("status") }, el("span", { class: "status", "data-status": o.status }, t(o.status))),
        el("td", { class: "num", "data-label": t("amount") }, formatVnd(o.total_amount)))))));
}

// The order page doubles as the result page: back from the gateway
// (?returned=1) it polls GetOrder with a growing delay until the status is
// no longer "awaiting payment". Polling rather than a server stream: the
// transcoder turns a server stream into one JSON array sent when the stream
// ends, so a browser could not read it live through the ingress.
async function orderPage(orderId) {
  const params = new URLSearchParams(location.search);
  const returned = params.has("returned");
  let delay = 500;
  const started = Date.now();
  const render = (order) => {
    const select = el("select", { id: "provider", "data-testid": "provider-select" },
      PROVIDERS.map(([value, name]) => el("option", { value }, name)));
    const error = el("div");
    const payable = PAYABLE.includes(order.status);
    const payButton = el("button", {
      type: "button", "data-testid": "pay-again",
      onclick: async () => {
        payButton.disabled = true;
        try {
          const result = await api("POST", "/v1/orders/" + encodeURIComponent(order.id) + ":retryPayment", {
            provider: select.value,
            return_url: location.origin + "/shop/orders/" + encodeURIComponent(order.id) + "?returned=1",
          });
          // Cash on delivery has no checkout: follow the order here until it says so.
          location.assign(result.checkout_url || "/shop/orders/" + encodeURIComponent(order.id) + "?returned=1");
        } catch (e) {
          showError(error, e);
          payButton.disabled = false;
        }
      },
    }, order.status === "ORDER_STATUS_PENDING_PAYMENT" ? t("pay") : t("payAgain"));
    app.replaceChildren(
      el("h2", {}, t("order") + " #", el("span", { "data-testid": "order-number" }, order.order_code)),
      el("p", {}, t("status") + ": ", statusBadge(order)),
      order.status_reason ? el("p", { class: "muted" }, t("reason") + ": " + order.status_reason) : "",
      returned && order.status === "ORDER_STATUS_PENDING_PAYMENT" ? el("p", { class: "notice", role: "status" }, t("checking")) : "",
      el("table", { class: "stack" },
        el("thead", {}, el("tr", {}, el("th", {}, t("product")), el("th", { class: "num" }, t("quantity")), el("th", { class: "num" }, t("amount")))),
        el("tbody", {}, (order.items || []).map((i) => el("tr", {},
          el("td", { "data-label": t("product") }, i.name),
          el("td", { class: "num", "data-label": t("quantity") }, i.quantity),
          el("td", { class: "num", "data-label": t("amount") }, formatVnd(i.line_total)))),
          el("tr", {}, el("th", {}, t("total")), el("td", {}), el("td", { class: "num", "data-testid": "order-amount" }, formatVnd(order.total_amount))),
          // Money given back (operator refunds); shown once there is some.
          Number(order.refunded_amount || 0) > 0 ? el("tr", {}, el("th", {}, t("refunded")), el("td", {}),
            el("td", { class: "num", "data-testid": "order-refunded" }, formatVnd(order.refunded_amount))) : "")),
      el("p", { class: "muted" }, [order.receiver_name, order.receiver_phone, order.shipping_address].filter(Boolean).join(" · ")),
      payable ? el("div", { class: "row" }, el("div", {}, el("label", { for: "provider" }, t("gateway")), select), payButton) : "",
      error);
  };
  const load = async () => {
    const data = await api("GET", "/v1/orders/" + encodeURIComponent(orderId));
    render(data.order);
    const waiting = returned && data.order.status === "ORDER_STATUS_PENDING_PAYMENT";
    if (waiting && Date.now() - started < 5 * 60 * 1000) {
      setTimeout(() => load().catch((e) => showError(app, e)), delay);
      delay = Math.min(delay * 1.5, 10000);
    }
  };
  await load();
}

async function route() {
  setupChrome();
  const path = location.pathname.replace(/\/+$/, "");
  const match = path.match(/^\/shop\/orders\/([^/]+)$/);
  try {
    if (match) await orderPage(decodeURIComponent(match[1]));
    else if (path === "/shop/orders") await ordersPage();
    else await productsPage();
  } catch (e) {
    showError(app, e);
  }
}

route();
