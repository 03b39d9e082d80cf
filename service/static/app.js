// hftlive live page: a book rebuilt from the stream's snapshot + deltas, and a trade tape. No dependencies.
"use strict";

const config = JSON.parse(document.getElementById("config").textContent);
const CLOSE = config.close_codes;   // by name, as the service serves them (service/protocol.py)
const LEVELS = 15;
const TAPE_LENGTH = 60;
const TRADING_POLL_S = 1;
const $ = (id) => document.getElementById(id);

let socket = null;
let symbol = config.symbols[0];
let book = null;           // {bids: Map(price → qty), asks: Map}
let seq = 0;
let trades = [];
let digits = { price: 2, qty: 3 };
let drawPending = false;
let retryMs = 500;
let trading = null;        // the latest /v1/trading answer, or {failed: status, detail} when it could not be had

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
  requestDraw();
}

function cell(text, className, style) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (style) td.setAttribute("style", style);
  return td;
}

function ladderRow(price, qty, side, widest, mine) {
  const tr = document.createElement("tr");
  const width = `--w:${Math.round((100 * qty) / widest)}%`;
  const amount = qty ? qty.toFixed(digits.qty) : "";
  const key = price.toFixed(digits.price);
  tr.append(
    side === "bid" ? cell(amount, "bar-bid", width) : cell(""),
    cell(key, "price"),
    side === "ask" ? cell(amount, "bar-ask", width) : cell(""),
  );
  if (config.trading) {
    // The bot's orders resting at this price: side and leaves qty, e.g. "B 0.002".
    const orders = mine.get(key) || [];
    if (orders.length) tr.className = "mine";
    const sides = new Set(orders.map((o) => o.side));
    const text = orders.map((o) => `${o.side === "Buy" ? "B" : "S"} ${o.leaves_qty.toFixed(digits.qty)}`).join(" ");
    tr.append(cell(text, "bot-col" + (sides.size === 1 ? (sides.has("Buy") ? " bot-buy" : " bot-sell") : "")));
  }
  return tr;
}

// A side's best LEVELS levels, best first, plus a row without size for each of the bot's orders on
// that side resting where the book has no level (inside the spread, or in a gap): every open order
// shows on the ladder.
function ladder(side, mine, orderSide, better) {
  const shown = [...side].sort((a, b) => better(a[0], b[0])).slice(0, LEVELS);
  const have = new Set(shown.map(([p]) => p.toFixed(digits.price)));
  const worst = shown.length === LEVELS ? shown[LEVELS - 1][0] : null;
  for (const [key, orders] of mine) {
    const price = orders[0].price;
    if (!have.has(key) && orders.some((o) => o.side === orderSide) && (worst === null || better(price, worst) < 0)) {
      shown.push([price, 0]);
    }
  }
  return shown.sort((a, b) => better(a[0], b[0]));
}

function botOrders() {
  // The current symbol's open orders by price (as the ladder prints it).
  const mine = new Map();
  const state = trading && !trading.failed && trading.enabled && (trading.symbols || {})[symbol];
  for (const order of (state && state.open_orders) || []) {
    const key = order.price.toFixed(digits.price);
    mine.set(key, [...(mine.get(key) || []), order]);
  }
  return mine;
}

function draw() {
  drawPending = false;
  $("seq").textContent = `seq ${seq}`;
  if (book) {
    const mine = botOrders();
    const bids = ladder(book.bids, mine, "Buy", (a, b) => b - a);
    const asks = ladder(book.asks, mine, "Sell", (a, b) => a - b);
    const widest = Math.max(1e-12, ...bids.map((l) => l[1]), ...asks.map((l) => l[1]));
    $("asks").replaceChildren(...[...asks].reverse().map(([p, q]) => ladderRow(p, q, "ask", widest, mine)));
    $("bids").replaceChildren(...bids.map(([p, q]) => ladderRow(p, q, "bid", widest, mine)));
    const bestBid = Math.max(...book.bids.keys()), bestAsk = Math.min(...book.asks.keys());
    $("spread").textContent = book.bids.size && book.asks.size
      ? `spread ${(bestAsk - bestBid).toFixed(digits.price)}` : "";
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
  if (config.trading) drawTrading();
}

function requestDraw() {
  if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
}

function tradingState() {
  // [pill class, pill text, detail]
  if (trading === null) return ["", "asking the connector…", ""];
  if (trading.failed === 401) return ["unreachable", "token refused", "reload the page to give the API token"];
  if (trading.failed) return ["unreachable", "connector unreachable", trading.detail];
  if (!trading.enabled) return ["trading-off", "trading off", trading.reason || ""];
  if (trading.killed) {
    return ["killed", "KILLED", "kill switch pulled: orders cancelled, new ones refused until the connector restarts"];
  }
  if (!trading.reconciled) return ["reconciling", "reconciling", "reading open orders and position from the exchange"];
  return ["trading-on", "trading", trading.exchange_url || ""];
}

function drawTrading() {
  const [kind, text, detail] = tradingState();
  const pill = $("trading-state");
  pill.className = "pill " + kind;
  pill.textContent = text;
  $("trading-detail").textContent = detail;
  const state = trading && !trading.failed && trading.enabled ? (trading.symbols || {})[symbol] : null;
  const show = (id, value, className) => { $(id).textContent = value; $(id).className = className || ""; };
  show("trading-position", state ? state.position.toFixed(digits.qty) : "–");
  show("trading-avg", state && state.avg_price !== null && state.avg_price !== undefined
    ? state.avg_price.toFixed(digits.price) : "–");
  show("trading-pnl", state ? state.realised_pnl.toFixed(4) : "–",
    state ? (state.realised_pnl > 0 ? "gain" : state.realised_pnl < 0 ? "loss" : "") : "");
  show("trading-fills", state ? String(state.fills) : "–");
  const orders = state ? [...(state.open_orders || [])].sort((a, b) => b.price - a.price) : [];
  show("trading-open", state ? String(orders.length) : "–");
  $("orders").replaceChildren(...orders.map((o) => {
    const tr = document.createElement("tr");
    tr.append(cell(o.side, o.side), cell(o.price.toFixed(digits.price), o.side), cell(o.leaves_qty.toFixed(digits.qty)),
      cell(o.qty.toFixed(digits.qty)), cell(o.status), cell(o.link_id));
    return tr;
  }));
}

async function pollTrading() {
  // The page's own token (the stream asked for it); never a prompt from here, every second.
  const headers = { Accept: "application/json" };
  const secret = sessionStorage.getItem("hftlive-token");
  if (secret) headers.Authorization = `Bearer ${secret}`;
  try {
    const answer = await fetch("/v1/trading", { headers, cache: "no-store" });
    const body = await answer.json().catch(() => ({}));
    if (answer.ok && (body.source !== config.source || body.exchange !== config.exchange)) {
      location.reload();   // another service behind this URL now: the labels must not lie
      return;
    }
    trading = answer.ok ? body : { failed: answer.status, detail: body.detail || `HTTP ${answer.status}` };
  } catch (error) {
    trading = { failed: -1, detail: `the service did not answer: ${error.message}` };
  }
  requestDraw();
  setTimeout(pollTrading, TRADING_POLL_S * 1e3);
}

function initTrading() {
  const label = $("trading-exchange");
  label.textContent = config.exchange === "bybit" ? "bybit · mainnet, real money" : config.exchange;
  label.className = `exchange exchange-${config.exchange}`;
  label.dataset.exchange = config.exchange;
  $("trading").hidden = false;
  document.body.classList.add("trading-shown");
  pollTrading();
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
  if (config.trading) initTrading();
}

init();
