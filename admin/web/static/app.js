// app.js -- the console's pages. Every value that comes from a catalog, Redis or MongoDB goes
// into the page as text (textContent, attribute values), never as HTML, so a hostile URL or
// error message shows as the characters it is.
"use strict";

let csrf = null;
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") e.textContent = String(v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, options) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (res.status === 401) {
    location.href = "/login";
    throw new Error("the console needs its token");
  }
  const body = await res.json().catch(() => ({ error: "HTTP " + res.status }));
  if (!res.ok) throw new Error(body.error || "HTTP " + res.status);
  return body;
}

function view(...children) {
  const v = document.getElementById("view");
  v.replaceChildren(...children);
  return v;
}

function fail(err) {
  return el("p", { class: "error", id: "error", text: err.message || String(err) });
}

function fmtInt(v) {
  return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US");
}

function fmtRate(v) {
  return v === null || v === undefined ? "" : v.toFixed(1) + "/s";
}

function fmtAge(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
}

function fmtTime(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC") : "–";
}

// A name from Redis (a counter, reason, worker or transform) as text that wraps after its ':',
// '_', '-' or '.' on a narrow screen, never inside a word; the numbers beside it stay on one line
// (style.css), so a long name costs height, not alignment.
function breakable(name) {
  return String(name).split(/(?<=[:_.-])/).flatMap((p, i) => (i ? [el("wbr"), p] : [p]));
}

function nameCell(name) {
  return el("td", { class: "mono name" }, breakable(name));
}

function table(id, headers, rows) {
  return el("div", { class: "scroll" },
    el("table", { id },
      el("thead", {}, el("tr", {}, headers.map((h) =>
        el("th", { class: h.num ? "num" : null, text: h.label || h })))),
      el("tbody", {}, rows)));
}

// ---- overview ----

const MAIN = ["received", "stored", "aliased", "duplicates", "invalid", "failed", "retries",
  "reclaimed", "ingest_lines", "ingest_queued", "ingest_duplicates", "ingest_invalid"];

function card(label, value, rate, id) {
  return el("div", { class: "card" },
    el("div", { class: "label", text: label }),
    el("div", { class: "value", id, text: value }),
    el("div", { class: "rate", text: rate || "\u00a0" }));
}

function chart(history) {
  const canvas = el("canvas", { class: "chart", id: "chart", width: 900, height: 170 });
  const pts = history.points || [];
  const ix = (name) => history.series.indexOf(name) + 1;
  const rates = [];
  for (let i = 1; i < pts.length; i++) {
    const dt = (pts[i][0] - pts[i - 1][0]) / 1000;
    if (dt <= 0) continue;
    const d = (n) => Math.max(0, pts[i][ix(n)] - pts[i - 1][ix(n)]) / dt;
    rates.push({ t: pts[i][0], ok: d("stored") + d("aliased"), bad: d("failed") });
  }
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 28;
  const max = Math.max(1, ...rates.map((r) => Math.max(r.ok, r.bad)));
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = "#d8dde3";
  ctx.fillStyle = "#68727d";
  ctx.font = "11px sans-serif";
  for (const f of [0, 0.5, 1]) {
    const y = H - pad - f * (H - 2 * pad);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(W - 4, y); ctx.stroke();
    ctx.fillText((max * f).toFixed(1), 2, y + 4);
  }
  const span = 5 * 60 * 1000, now = pts.length ? pts[pts.length - 1][0] : Date.now();
  const x = (t) => pad + (W - pad - 4) * (1 - (now - t) / span);
  for (const [key, color] of [["ok", "#2e7d32"], ["bad", "#c62828"]]) {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
    rates.forEach((r, i) => {
      const y = H - pad - (r[key] / max) * (H - 2 * pad);
      if (i === 0) ctx.moveTo(x(r.t), y); else ctx.lineTo(x(r.t), y);
    });
    ctx.stroke();
  }
  ctx.fillStyle = "#68727d";
  ctx.fillText("last 5 minutes, pictures per second", pad, H - 8);
  return canvas;
}

function renderOverview(data) {
  const s = data.stats, c = s.counters || {}, r = data.rates || {};
  const st = s.stream, oldest = st.oldest_pending;
  const cards = el("div", { class: "cards", id: "cards" },
    card("stored", fmtInt(c.stored || 0), fmtRate(r.stored), "card-stored"),
    card("aliased", fmtInt(c.aliased || 0), fmtRate(r.aliased), "card-aliased"),
    card("failed", fmtInt(c.failed || 0), fmtRate(r.failed), "card-failed"),
    card("received", fmtInt(c.received || 0), fmtRate(r.received), "card-received"),
    card("backlog", fmtInt(st.backlog), st.group_exists ? "not yet read" : "no group yet", "card-backlog"),
    card("pending", fmtInt(st.pending), "read, not acked", "card-pending"),
    card("oldest pending", oldest ? fmtAge(oldest.age_ms) : "–", oldest ? "at " + oldest.consumer : "", "card-oldest"),
    card("dead letters", fmtInt(s.dead.letters), "now in the dead stream", "card-dead"),
    c.reprocess_queued ? card("reprocess", fmtInt((c.reprocessed || 0) + (c.reprocess_failed || 0)) +
      " / " + fmtInt(c.reprocess_queued), fmtRate(r.reprocessed) + (c.reprocess_failed ?
      " · " + fmtInt(c.reprocess_failed) + " failed" : ""), "card-reprocess") : null);

  const names = Object.keys(c).sort((a, b) => {
    const ia = MAIN.indexOf(a), ib = MAIN.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const counters = table("counters", ["counter", { label: "total", num: 1 }, { label: "rate", num: 1 }],
    names.map((n) => el("tr", {},
      nameCell(n),
      el("td", { class: "num counter-value", "data-counter": n, text: c[n] }),
      el("td", { class: "num", text: fmtRate(r[n]) }))));

  const workers = s.workers.length ? table("workers",
    ["worker", { label: "in flight", num: 1 }, { label: "processed", num: 1 },
      { label: "pending", num: 1 }, "last seen", "version"],
    s.workers.map((w) => el("tr", {},
      nameCell(w.name),
      el("td", { class: "num", text: fmtInt(w.in_flight) }),
      el("td", { class: "num", text: fmtInt(w.processed) }),
      el("td", { class: "num", text: fmtInt(w.pending) }),
      el("td", { text: w.last_seen || "–" }),
      el("td", { text: w.version || "–" }))))
    : el("p", { class: "muted", id: "workers", text: "No live worker (no heartbeat)." });

  // Source hosts as the whole fleet shares them (SPEC §5.8): what holds each back now.
  const hostRows = (s.hosts || []).map((h) => el("tr", {},
    el("td", { class: "mono", text: h.host }),
    el("td", { class: "num", text: fmtInt(h.in_flight) }),
    el("td", { class: "num", text: fmtInt(h.concurrency) + " / " + fmtInt(h.max_inflight) }),
    el("td", { class: "num", text: String(h.rate) }),
    el("td", { class: "num", text: fmtInt(h.waits) }),
    el("td", { text: h.pause_ms ? fmtAge(h.pause_ms) : "–" }),
    el("td", { class: "circuit-" + h.circuit,
      text: h.circuit + (h.circuit === "open" ? " (" + fmtAge(h.open_ms) + " left)" : "") })));
  const hosts = hostRows.length ? table("hosts", ["host", { label: "in flight", num: 1 },
    { label: "concurrency", num: 1 }, { label: "rate/s", num: 1 }, { label: "waits", num: 1 },
    "pause", "circuit"], hostRows)
    : null;

  const reasons = Object.entries(s.dead.by_reason || {});
  const dead = reasons.length ? table("reasons", ["reason", { label: "ever", num: 1 }],
    reasons.map(([k, v]) => el("tr", {},
      el("td", { class: "name" }, el("a", { href: "#dead?reason=" + encodeURIComponent(k.replace(/^(failed|invalid):/, "")) },
        breakable(k))),
      el("td", { class: "num", text: fmtInt(v) }))))
    : el("p", { class: "muted", text: "No failure so far." });

  const transforms = Object.keys(c).filter((n) => /^transform:.*:ok$/.test(n)).map((n) => {
    const base = n.slice(0, -3), ok = c[n], bad = c[base + ":failed"] || 0, us = c[base + ":usec"] || 0;
    return el("tr", {}, nameCell(base.slice(10)),
      el("td", { class: "num", text: fmtInt(ok) }), el("td", { class: "num", text: fmtInt(bad) }),
      el("td", { class: "num", text: ok + bad ? (us / 1000 / (ok + bad)).toFixed(2) + " ms" : "–" }));
  });

  view(el("h1", { text: "Overview" }),
    el("p", { class: "muted", id: "updated", text: "as of " + s.time + " · prefix " + s.prefix + " · group " + s.group }),
    cards,
    el("h2", { text: "Throughput" }), chart(data.history),
    el("div", { class: "legend" }, el("span", { class: "stored", text: "■ stored + aliased" }), "  ",
      el("span", { class: "failed", text: "■ failed" })),
    el("h2", { text: "Workers" }), workers,
    hosts ? el("h2", { text: "Hosts (" + fmtInt(c.host_waits || 0) + " requests waited for theirs)" }) : null,
    hosts,
    el("h2", { text: "Dead letters by reason" }), dead,
    transforms.length ? el("h2", { text: "Transforms (average time per picture)" }) : null,
    transforms.length ? table("transforms", ["transform", { label: "ok", num: 1 }, { label: "failed", num: 1 }, { label: "average", num: 1 }], transforms) : null,
    el("h2", { text: "Counters" }), counters);
}

async function showOverview() {
  const tick = async () => {
    try {
      renderOverview(await api("/api/overview"));
    } catch (e) {
      view(el("h1", { text: "Overview" }), fail(e));
    }
  };
  await tick();
  timer = setInterval(tick, 2000);
}

// ---- dead letters ----

async function replay(fields, question) {
  if (!window.confirm(question)) return null;
  const body = new URLSearchParams(fields);
  return api("/api/dead/replay", { method: "POST", body, headers: { "X-CSRF-Token": csrf || "" } });
}

async function showDead(params, message) {
  const reason = params.get("reason") || "";
  let data;
  try {
    data = await api("/api/dead?limit=200" + (reason ? "&reason=" + encodeURIComponent(reason) : ""));
  } catch (e) {
    view(el("h1", { text: "Dead letters" }), fail(e));
    return;
  }
  const select = el("select", { id: "reason", onchange: (ev) => {
    location.hash = "#dead" + (ev.target.value ? "?reason=" + encodeURIComponent(ev.target.value) : "");
  } }, el("option", { value: "", text: "every reason (" + data.total + ")" }),
  Object.entries(data.reasons).map(([k, n]) => {
    const o = el("option", { value: k, text: k + " (" + n + ")" });
    if (k === reason) o.selected = true;
    return o;
  }));
  const notice = el("p", { id: "notice", class: "notice", hidden: message ? null : "", text: message || "" });
  // The list drawn again without the replayed letters, the outcome above it.
  const done = (res) => {
    if (!res) return;
    showDead(params, "replayed " + res.replayed + (res.skipped ? ", skipped " + res.skipped : "") +
      ": back in the stream for the workers");
  };
  const all = reason ? el("button", { id: "replay-all", onclick: () =>
    replay({ reason }, "Replay all " + data.matching + " dead letters with reason " + reason + "?")
      .then(done, (e) => notice.replaceWith(fail(e))) }, "Replay all " + reason) : null;
  const rows = data.letters.map((l) => el("tr", { "data-id": l.id },
    el("td", { class: "mono", text: l.id }),
    el("td", { text: l.reason }),
    el("td", { class: "num", text: l.attempts }),
    el("td", { class: "url mono", text: l.url }),
    el("td", { class: "wrap", text: l.error }),
    el("td", {}, el("button", { class: "secondary replay", onclick: () =>
      replay({ id: l.id }, "Replay dead letter " + l.id + " (" + (l.url || "no url") + ")?")
        .then(done, (e) => notice.replaceWith(fail(e))) }, "Replay"))));
  view(el("h1", { text: "Dead letters" }),
    el("form", { class: "inline", onsubmit: (e) => e.preventDefault() },
      el("label", {}, "Reason ", select), all),
    notice,
    el("p", { class: "muted", text: data.shown + " shown of " + data.matching + " matching, " + data.total + " in all, newest first" }),
    rows.length ? table("letters", ["id", "reason", { label: "attempts", num: 1 }, "URL", "error", ""], rows)
      : el("p", { class: "muted", id: "letters", text: "No dead letter." }));
}

// ---- search ----

function row(label, value, id) {
  return [el("dt", { text: label }), el("dd", { id, text: value === null || value === undefined ? "–" : value })];
}

async function showSearch(params) {
  const q = params.get("url") || "";
  const input = el("input", { type: "search", id: "search-url", placeholder: "https://picsum.photos/200/300", value: q });
  const form = el("form", { class: "inline", id: "search-form", onsubmit: (e) => {
    e.preventDefault();
    location.hash = "#search?url=" + encodeURIComponent(input.value.trim());
  } }, input, el("button", { type: "submit", id: "search-go" }, "Find"));
  if (!q) {
    view(el("h1", { text: "Search by URL" }), form,
      el("p", { class: "muted", text: "Where one URL is: not seen, invalid, queued, pending at a worker, dead, or stored as which image." }));
    return;
  }
  let d;
  try {
    d = await api("/api/search?url=" + encodeURIComponent(q));
  } catch (e) {
    view(el("h1", { text: "Search by URL" }), form, fail(e));
    return;
  }
  const parts = [el("h1", { text: "Search by URL" }), form,
    el("p", {}, el("span", { class: "badge " + d.status, id: "search-status", text: d.status.replace("_", " ") })),
    el("dl", { class: "meta" }, row("query", d.query), row("normalized", d.normalized, "search-normalized"),
      d.invalid_reason ? row("invalid", d.invalid_reason + " (ingest rejects it; rejected lines are counted, not recorded per URL)", "search-invalid") : null,
      row("in the dedup set", d.seen ? "yes" : "no"))];
  if (d.stored) {
    const img = d.image;
    parts.push(el("h2", { text: d.stored.role === "alias" ? "Stored as an alias" : "Stored" }),
      el("dl", { class: "meta" },
        row("image", d.stored.image, "search-image"), row("role", d.stored.role, "search-role"),
        row("entry", d.stored.stream_id), row("consumer", d.stored.consumer), row("at", d.stored.inserted_at),
        img ? row("first produced by", img.source) : null),
      el("p", {}, el("a", { href: "#image/" + d.stored.image, id: "search-open" }, "Open the image")));
  }
  if (d.stream.length)
    parts.push(el("h2", { text: "In the stream" }), table("search-stream", ["entry", "state", "consumer", "source"],
      d.stream.map((s) => el("tr", {}, el("td", { class: "mono", text: s.id }), el("td", { text: s.state }),
        el("td", { text: s.consumer || "–" }), el("td", { text: (s.source || "–") + (s.line ? ":" + s.line : "") })))));
  if (d.dead.length)
    parts.push(el("h2", { text: "Dead letters" }), table("search-dead", ["letter", "reason", "attempts", "error"],
      d.dead.map((l) => el("tr", {}, el("td", { class: "mono", text: l.id }), el("td", { text: l.reason }),
        el("td", { class: "num", text: l.attempts }), el("td", { class: "wrap", text: l.error })))));
  parts.push(el("h2", { text: "Timeline" }), d.timeline.length
    ? el("ol", { class: "timeline", id: "timeline" }, d.timeline.map((t) =>
      el("li", {}, el("span", { class: "muted", text: fmtTime(t.time) + " · " }), el("strong", { text: t.event }), " ", t.detail)))
    : el("p", { class: "muted", id: "timeline", text: "Nothing recorded for this URL." }));
  view(...parts);
}

// ---- gallery and one image ----

async function showGallery(params) {
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0), limit = 24;
  let d;
  try {
    d = await api("/api/images?limit=" + limit + "&offset=" + offset);
  } catch (e) {
    view(el("h1", { text: "Gallery" }), fail(e));
    return;
  }
  const pager = el("div", { class: "pager" },
    offset > 0 ? el("a", { href: "#gallery?offset=" + Math.max(0, offset - limit), id: "prev" }, "← newer") : null,
    el("span", { class: "muted", text: d.total ? (offset + 1) + "–" + (offset + d.images.length) + " of " + d.total : "nothing stored yet" }),
    offset + limit < d.total ? el("a", { href: "#gallery?offset=" + (offset + limit), id: "next" }, "older →") : null);
  view(el("h1", { text: "Gallery" }), pager,
    el("div", { class: "grid", id: "gallery" }, d.images.map((i) =>
      el("a", { class: "thumb", href: "#image/" + i._id, "data-id": i._id },
        el("img", { src: "/api/images/" + i._id + ".png", alt: i.source || i._id, loading: "lazy", width: 150, height: 130 }),
        el("span", { text: i.width + "×" + i.height + " · " + fmtInt(i.bytes) + " B" }),
        el("span", { class: "muted", text: i.source })))));
}

// What made the pixels, as documents record it: library and version, path, and the DCT scale.
function decoderText(d) {
  if (!d) return "not recorded (stored before documents named it)";
  return d.library + " " + d.version + ", " + d.path + (d.scale > 1 ? ", decoded at 1/" + d.scale : "");
}

async function showImage(id) {
  let d;
  try {
    d = await api("/api/images/" + encodeURIComponent(id));
  } catch (e) {
    view(el("h1", { text: "Image" }), fail(e));
    return;
  }
  const i = d.image, o = i.origin || {};
  view(el("h1", { text: "Image" }), el("p", {}, el("a", { href: "#gallery" }, "← gallery")),
    el("p", {}, el("a", { href: "/api/images/" + i._id + ".png", id: "full" },
      el("img", { class: "full", src: "/api/images/" + i._id + ".png", alt: i.source || i._id }))),
    el("dl", { class: "meta", id: "meta" },
      row("id (sha256)", i._id), row("size", i.width + "×" + i.height + ", " + i.channels + " channel(s), " + fmtInt(i.bytes) + " bytes, " + i.format),
      row("encoder", i.encoder || "not recorded", "meta-encoder"), row("decoder", decoderText(i.decoder), "meta-decoder"),
      row("first produced by", i.source, "meta-source"), row("stored at", i.inserted_at),
      row("entry", i.stream_id), row("consumer", i.consumer), row("attempts", i.attempts),
      i.storage ? row("storage", i.storage) : null),
    el("h2", { text: "Origin (what was downloaded)" }),
    el("dl", { class: "meta" }, row("final URL", o.final_url), row("content type", o.content_type),
      row("size", o.width + "×" + o.height + ", " + fmtInt(o.bytes) + " bytes"), row("sha256", o.sha256)),
    el("h2", { text: "Original (kept in the raw store)" }),
    d.original ? el("dl", { class: "meta", id: "original" },
      row("size", fmtInt(d.original.document.bytes) + " bytes, " + d.original.document.width + "×" + d.original.document.height),
      row("type", d.original.document.content_type + " (" + d.original.document.format + ")"),
      row("kept at", d.original.document.raw, "original-raw"),
      d.original.href ? [el("dt", { text: "file" }), el("dd", {}, el("a", { href: d.original.href, id: "original-link" }, "Download the original"))] : null)
      : el("p", { class: "muted", id: "original", text: "Not kept: stored before originals were kept, or with no raw store configured." }),
    el("h2", { text: "Transforms" }),
    table("transforms", ["name", "version", "sha256 of the plugin"], (i.transforms || []).map((t) =>
      el("tr", {}, el("td", { text: t.name }), el("td", { text: t.version }), el("td", { class: "mono", text: t.sha256 })))),
    el("h2", { text: "Renditions of its original" }),
    renditionsOf(i, d),
    el("h2", { text: "URLs that produced it" }),
    d.sources.length ? table("sources", ["URL", "role", "entry", "at"], d.sources.map((s) =>
      el("tr", {}, el("td", { class: "url mono" }, el("a", { href: "#search?url=" + encodeURIComponent(s._id), text: s._id })),
        el("td", { text: s.role }), el("td", { class: "mono", text: s.stream_id }), el("td", { text: s.inserted_at }))))
      : el("p", { class: "muted", id: "sources", text: "No sources document names this image." }));
}

// Every rendition defined, with what the original has of it and a button to queue it.
function renditionsOf(image, d) {
  const have = {};
  for (const r of d.renditions || []) have[r.rendition] = r;
  const sha = (image.origin || {}).sha256;
  const names = Object.keys(d.defined || {});
  return table("renditions", ["rendition", "chain", "picture", "recorded chain", ""], names.map((n) => {
    const r = have[n];
    const recorded = r ? (r.chain || []).map((l) => l.name + " " + l.version).join(", ") : "–";
    const button = n === "default" || !d.original ? null : el("button", {
      class: "reprocess", "data-rendition": n, text: r ? "Redo" : "Make it",
      onclick: async (ev) => {
        const body = new URLSearchParams({ original: sha, rendition: n });
        try {
          const res = await api("/api/reprocess", { method: "POST", body, headers: { "X-CSRF-Token": csrf || "" } });
          ev.target.replaceWith(el("span", { class: "muted", text: res.queued ? "queued" : "already queued" }));
        } catch (e) {
          ev.target.replaceWith(fail(e));
        }
      },
    });
    return el("tr", {}, el("td", { class: "mono", text: n }), el("td", { class: "mono", text: d.defined[n] }),
      el("td", {}, r ? el("a", { href: "#image/" + r.image, text: r.image.slice(0, 12) + "…" }) : el("span", { class: "muted", text: "none" })),
      el("td", { text: recorded }), el("td", {}, button));
  }));
}

// ---- routing ----

async function route() {
  if (timer) clearInterval(timer);
  timer = null;
  const hash = location.hash.replace(/^#/, "") || "overview";
  const [page, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const name = page.split("/")[0];
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("active", a.id === "nav-" + (name === "image" ? "gallery" : name));
  if (name === "dead") return showDead(params);
  if (name === "search") return showSearch(params);
  if (name === "gallery") return showGallery(params);
  if (name === "image") return showImage(page.slice(6));
  return showOverview();
}

async function start() {
  try {
    const s = await api("/api/session");
    csrf = s.csrf;
    document.getElementById("session").replaceChildren(
      "v" + s.version + " · " + s.prefix + " ",
      s.token_required ? el("a", { href: "/logout", id: "logout" }, "sign out") : "");
  } catch (e) {
    view(fail(e));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
