// Shared by the shop and the console: language, money, the JSON API.
"use strict";

const TOKEN_KEY = "payments.token";
const LANG_KEY = "payments.lang";

function lang() {
  return localStorage.getItem(LANG_KEY) === "en" ? "en" : "vi";
}

function t(key, ...args) {
  const table = window.TEXT[lang()];
  const value = key in table ? table[key] : window.TEXT.en[key] || key;
  return typeof value === "function" ? value(...args) : value;
}

// 89000 -> "89.000 ₫" (VND has no minor unit).
function formatVnd(amount) {
  const n = Number(amount || 0);
  const digits = String(Math.abs(Math.trunc(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  return (n < 0 ? "-" : "") + digits + " ₫";
}

function formatTime(value) {
  if (!value) return "";
  const d = new Date(value);
  return d.toLocaleString(lang() === "vi" ? "vi-VN" : "en-GB", { dateStyle: "short", timeStyle: "medium" });
}

// An element: el("td", {class: "num", "data-testid": "x"}, child, "text", ...)
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "k" + Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function showError(target, error) {
  const text = error instanceof ApiError && error.status === 401 ? t("signIn") : t("error") + ": " + error.message;
  target.replaceChildren(el("p", { class: "error", role: "alert" }, text));
}

function setupChrome() {
  document.documentElement.lang = lang();
  const toggle = document.getElementById("lang-toggle");
  toggle.textContent = lang() === "vi" ? "English" : "Tiếng Việt";
  toggle.setAttribute("lang", lang() === "vi" ? "en" : "vi");
  toggle.onclick = () => {
    localStorage.setItem(LANG_KEY, lang() === "vi" ? "en" : "vi");
    location.reload();
  };
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
}
