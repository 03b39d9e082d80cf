// hftlive live page: a book rebuilt from the stream's snapshot + deltas, and a trade tape. No dependencies.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const CLOSE = config.close_codes;   // by name, as the service serves them (service/protocol.py)
const LEVELS = 15;
const TAPE_LENGTH = 60;
const $ = (id) => document.getElementById(id);

let socket = null;
let symbol = config.symbols[0];
let book = null;           // {bids: Map(price → qty), asks: Map}
let seq = 0;
let trades = [];
let digits = { price: 2, qty: 3 };
let drawPending = false;
let retryMs = 500;

function decimalsOf(step) {
  const text = String(step);
  if (text.includes("e-")) return Number(text.split("e-")[1]);
  return text.includes(".") ? text.split(".")[1].length : 0;
}

function token() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) sessionStorage.setItem("hftlive-token", decodeURIComponent(match[1]));
  let value = sessionStorage.getItem("hftlive-token");
  if (!value && config.auth) {
    value = window.prompt("This service needs its API token:") || "";
    sessionStorage.setItem("hftlive-token", value);
  }
  return value;
}

function setState(state, detail) {
  const pill = $("state");
  pill.textContent = state.replaceAll("_", " ");
  pill.className = "pill " + state;
  pill.title = detail || "";
}

function connect() {
  const url = new URL("/v1/stream", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("symbols", symbol);
  const secret = token();
  if (secret) url.searchParams.set("token", secret);
  const mine = new WebSocket(url);
  socket = mine;
  book = null;
  mine.onmessage = (event) => { if (socket === mine) handle(JSON.parse(event.data)); };
  mine.onclose = (event) => {
    if (socket !== mine) return;
    setState("offline", `stream closed: ${event.code} ${event.reason}`);
    if (event.code === CLOSE.UNKNOWN_SYMBOL) return;
    // A refused handshake (wrong token) reaches a browser as ABNORMAL, without a close frame.
    if (event.code === CLOSE.UNAUTHORIZED || event.code === CLOSE.ABNORMAL && config.auth) {
      sessionStorage.removeItem("hftlive-token");
    }
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10000);
  };
}

function resync() {
  // A missed sequence number: drop the book and start again from a fresh snapshot.
  book = null;
  if (socket) socket.close(CLOSE.RESYNC, "resync");
}

function handle(msg) {
  // The service behind this URL restarted with another feed: reload, so the banner never lies.
  if (msg.source !== config.source || msg.exchange !== config.exchange) { location.reload(); return; }
  if (msg.type === "status") { setState(msg.state, msg.detail); return; }
  if (msg.symbol !== symbol) return;
  if (msg.type === "snapshot") {
    book = { bids: new Map(msg.bids), asks: new Map(msg.asks) };
    seq = msg.seq;
    digits = { price: decimalsOf(msg.tick_size), qty: decimalsOf(msg.lot_size) };
    retryMs = 500;
  } else if (book === null) {
    return;
  } else if (msg.seq !== seq + 1) {
    resync();
    return;
  } else if (msg.type === "delta") {
    for (const [price, qty] of msg.bids) qty > 0 ? book.bids.set(price, qty) : book.bids.delete(price);
    for (const [price, qty] of msg.asks) qty > 0 ? book.asks.set(price, qty) : book.asks.delete(price);
    seq = msg.seq;
  } else if (msg.type === "trade") {
    trades.unshift(msg);
    if (trades.length > TAPE_LENGTH) trades.length = TAPE_LENGTH;
    seq = msg.seq;
  }
  if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
}

function cell(text, className, style) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (style) td.setAttribute("style", style);
  return td;
}

function ladderRow(price, qty, side, widest) {
  const tr = document.createElement("tr");
  const width = `--w:${Math.round((100 * qty) / widest)}%`;
  const amount = qty.toFixed(digits.qty);
  tr.append(
    side === "bid" ? cell(amount, "bar-bid", width) : cell(""),
    cell(price.toFixed(digits.price), "price"),
    side === "ask" ? cell(amount, "bar-ask", width) : cell(""),
  );
  return tr;
}

function draw() {
  drawPending = false;
  $("seq").textContent = `seq ${seq}`;
  if (book) {
    const bids = [...book.bids].sort((a, b) => b[0] - a[0]).slice(0, LEVELS);
    const asks = [...book.asks].sort((a, b) => a[0] - b[0]).slice(0, LEVELS);
    const widest = Math.max(1e-12, ...bids.map((l) => l[1]), ...asks.map((l) => l[1]));
    $("asks").replaceChildren(...asks.reverse().map(([p, q]) => ladderRow(p, q, "ask", widest)));
    $("bids").replaceChildren(...bids.map(([p, q]) => ladderRow(p, q, "bid", widest)));
    $("spread").textContent = bids.length && asks.length
      ? `spread ${(asks[asks.length - 1][0] - bids[0][0]).toFixed(digits.price)}` : "";
  }
  $("trades").replaceChildren(...trades.map((t) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(new Date(t.exch_ts / 1e6).toISOString().slice(11, 23)),
      cell(t.price.toFixed(digits.price), t.side),
      cell(t.qty.toFixed(digits.qty)),
      cell(t.side, t.side),
    );
    return tr;
  }));
}

function init() {
  const select = $("symbol");
  for (const name of config.symbols) select.append(new Option(name, name));
  select.onchange = () => {
    symbol = select.value;
    trades = [];
    $("asks").replaceChildren(); $("bids").replaceChildren(); $("trades").replaceChildren();
    if (socket) { const old = socket; socket = null; old.close(CLOSE.NORMAL, "symbol changed"); }
    connect();
  };
  connect();
}

init();
