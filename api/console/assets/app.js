// sessiond operator console: plain JS, no framework, no network but the
// node that served it. Calls go to /console/rpc/<procedure> (Connect JSON,
// snake_case), authenticated by the console's HttpOnly cookies.
"use strict";

const $ = (id) => document.getElementById(id);
const H = { "Content-Type": "application/json", "X-Sessiond-Console": "1", "Connect-Protocol-Version": "1" };
let me = null;
let timers = [];
let feedAbort = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function say(msg, error) {
  const s = $("status");
  s.textContent = msg || "";
  s.className = "status" + (error ? " error" : "");
}

class APIError extends Error {
  constructor(status, code, message) { super(message || code); this.status = status; this.code = code; }
}

async function post(path, body) {
  const res = await fetch(path, { method: "POST", headers: H, body: JSON.stringify(body || {}), credentials: "same-origin" });
  let data = {};
  try { data = await res.json(); } catch (_) { /* empty */ }
  if (!res.ok) {
    if (res.status === 401 && path !== "/console/login") { showLogin(); }
    throw new APIError(res.status, data.code || data.error, data.message || res.statusText);
  }
  return data;
}

const rpc = (proc, body) => post("/console/rpc/" + proc, body);

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d) || d.getUTCFullYear() < 1971) return "";
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function confirmDialog(title, text, okLabel, extra) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel || "Confirm";
    const x = $("confirm-extra");
    x.replaceChildren(...(extra ? [extra] : []));
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

async function act(what, f) {
  say(what + "…");
  try {
    const r = await f();
    say(what + ": done.");
    return r;
  } catch (e) {
    say(what + " failed: " + e.message, true);
    return undefined;
  }
}

// ---------- navigation ----------
const pages = ["cluster", "users", "sessions", "keys", "audit", "charts"];

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
  if (feedAbort) { feedAbort.abort(); feedAbort = null; }
}

function show(name) {
  for (const p of ["login", ...pages]) $("page-" + p).hidden = p !== name;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === "#" + name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function route() {
  stopTimers();
  if (!me) { showLogin(); return; }
  const [name, arg] = location.hash.slice(1).split("/");
  const page = pages.includes(name) ? name : "cluster";
  show(page);
  say("");
  ({ cluster: clusterPage, users: usersPage, sessions: sessionsPage, keys: keysPage, audit: auditPage, charts: chartsPage })[page](arg && decodeURIComponent(arg));
}

function showLogin() {
  me = null;
  stopTimers();
  $("nav").hidden = true;
  $("whoami").hidden = true;
  show("login");
  $("login-email").focus();
}

function loggedIn(who) {
  me = who;
  $("nav").hidden = false;
  $("whoami").hidden = false;
  $("who-name").textContent = who.email + " (" + who.roles.join(", ") + ")";
  $("where").textContent = "· " + who.node + " · " + who.region;
  route();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say("Logging in…");
  try {
    const who = await post("/console/login", { email: $("login-email").value, password: $("login-password").value, force: $("login-force").checked });
    $("login-password").value = "";
    say("");
    loggedIn(who);
  } catch (e) {
    say("Login refused: " + e.message, true);
  }
});

$("logout").addEventListener("click", async () => {
  try { await post("/console/logout"); } catch (_) { /* gone anyway */ }
  showLogin();
  say("Logged out.");
});

window.addEventListener("hashchange", route);

// ---------- cluster ----------
function tolerates(voters) { return Math.max(0, Math.floor((voters - 1) / 2)); }

async function clusterPage() {
  const tick = async () => {
    try { renderCluster(await rpc("sessiond.cluster.v1.ClusterService/Status", {})); } catch (e) { say("Cluster status: " + e.message, true); }
  };
  await tick();
  timers.push(setInterval(tick, 2000));
}

function renderCluster(st) {
  const members = st.members || [];
  const voters = members.filter((m) => m.suffrage === "SUFFRAGE_VOTER");
  const commit = Number(st.commit_index || 0);
  $("cluster-summary").textContent = `Leader ${st.leader_id || "none"} (${st.leader_region || "?"}) · term ${st.term || 0} · commit index ${commit} · ${voters.length} voters, tolerates ${tolerates(voters.length)} failure(s) · answered by ${st.answered_by} at ${new Date().toLocaleTimeString()}`;
  const byRegion = {};
  for (const m of members) (byRegion[m.region || "unknown"] ||= []).push(m);
  const out = [];
  for (const region of Object.keys(byRegion).sort()) {
    const rows = byRegion[region].map((m) => {
      const applied = Number(m.applied_index || 0);
      const lag = applied ? Math.max(0, commit - applied) : "";
      const role = m.leader ? "leader" : m.suffrage === "SUFFRAGE_VOTER" ? "follower" : m.staging ? "staging" : m.suffrage === "SUFFRAGE_NONVOTER" ? "non-voter" : "gossip only";
      const health = (m.health || "GOSSIP_HEALTH_UNSPECIFIED").replace("GOSSIP_HEALTH_", "").toLowerCase();
      const hc = health === "alive" ? "ok" : health === "suspect" ? "warn" : "bad";
      const actions = el("td", {});
      if (!m.leader && m.suffrage === "SUFFRAGE_VOTER") actions.append(el("button", { type: "button", class: "small secondary", onclick: () => transfer(st, m) }, "Make leader"));
      if (m.suffrage) actions.append(el("button", { type: "button", class: "small danger", onclick: () => removeNode(st, m, voters.length) }, "Remove"));
      return el("tr", {},
        el("th", { scope: "row" }, m.node_id, m.leader ? " ★" : ""),
        el("td", {}, role),
        el("td", {}, (m.suffrage || "").replace("SUFFRAGE_", "").toLowerCase() || "none"),
        el("td", {}, el("span", { class: "badge " + hc }, health)),
        el("td", { class: "num" }, applied || "?"),
        el("td", { class: "num" }, lag),
        el("td", {}, m.leader ? "is leader" : m.last_contact || (m.node_id === st.answered_by ? "" : "ok")),
        actions);
    });
    out.push(el("div", { class: "card" }, el("h2", {}, "Region " + region),
      el("div", { class: "table-wrap" }, el("table", { "aria-label": "Nodes in " + region },
        el("thead", {}, el("tr", {}, ...["Node", "Role", "Suffrage", "Health", "Applied index", "Lag", "Last contact", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows)))));
  }
  $("cluster-regions").replaceChildren(el("div", { class: "regions" }, out));
}

async function transfer(st, m) {
  const ok = await confirmDialog("Transfer leadership", `Leadership moves from ${st.leader_id} to ${m.node_id}. Writes pause for the hand-over (about a second); the number of voters and failures tolerated do not change.`, "Transfer");
  if (ok) await act("Transfer leadership to " + m.node_id, () => rpc("sessiond.cluster.v1.ClusterService/TransferLeadership", { target_node_id: m.node_id }));
}

async function removeNode(st, m, voters) {
  let text;
  if (m.suffrage === "SUFFRAGE_VOTER") {
    const after = voters - 1;
    text = `Remove ${m.node_id} from the cluster: ${voters} voters → ${after}; the cluster then tolerates ${tolerates(after)} failure(s)` +
      (after > 0 ? ` (quorum ${Math.floor(after / 2) + 1} of ${after}).` : ".") + (m.leader ? " It is the leader: it steps down and the others elect a new one." : "");
  } else {
    text = `Remove non-voter ${m.node_id}: the ${voters} voters and the ${tolerates(voters)} failure(s) tolerated do not change.`;
  }
  const ok = await confirmDialog("Remove a node", text, "Remove " + m.node_id);
  if (ok) await act("Remove " + m.node_id, () => rpc("sessiond.cluster.v1.ClusterService/Remove", { node_id: m.node_id }));
}

// ---------- users ----------
let lastUsers = [];

function usersPage(q) {
  if (q !== undefined) $("user-q").value = q;
  searchUsers();
}

async function searchUsers() {
  try {
    const r = await rpc("sessiond.auth.v1.UserAdminService/ListUsers", { query: $("user-q").value, limit: 100 });
    lastUsers = r.users || [];
    $("user-table").tBodies[0].replaceChildren(...lastUsers.map((u) => {
      const tr = el("tr", { class: "clickable", tabindex: "0", "aria-label": "Open " + u.email },
        el("td", {}, u.email), el("td", {}, u.display_name || ""), el("td", {}, u.org_name || ""), el("td", {}, u.country || ""),
        el("td", {}, (u.roles || []).join(", ")),
        el("td", {}, u.suspended ? el("span", { class: "badge bad" }, "suspended") : el("span", { class: "badge ok" }, "active")));
      const open = () => userDetail(u.email);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      return tr;
    }));
    $("user-total").textContent = `${r.total || 0} matching user(s)` + ((r.total || 0) > lastUsers.length ? `, ${lastUsers.length} shown` : "");
  } catch (e) { say("Search: " + e.message, true); }
}

$("user-search").addEventListener("submit", (e) => { e.preventDefault(); searchUsers(); });

async function findUser(email) {
  const r = await rpc("sessiond.auth.v1.UserAdminService/ListUsers", { query: email, limit: 50 });
  return (r.users || []).find((u) => u.email === email || u.id === email);
}

async function userDetail(email) {
  const u = await findUser(email);
  const box = $("user-detail");
  if (!u) { box.hidden = true; return; }
  box.hidden = false;
  const f = (id, label, value, attrs) => [el("label", { for: id }, label), el("input", { id, value: value || "", ...(attrs || {}) })];
  const form = el("form", { class: "grid", id: "user-edit" },
    ...f("e-roles", "Roles (comma-separated)", (u.roles || []).join(", ")),
    ...f("e-org", "Organisation", u.org_name),
    ...f("e-country", "Country", u.country, { maxlength: 2 }),
    el("label", { for: "e-orgtype" }, "Organisation type"),
    el("select", { id: "e-orgtype" }, ...["CUSTOMER", "SUPPLIER", "OPERATOR"].map((t) => el("option", { selected: (u.org_type || "").endsWith(t) }, t))),
    el("div", { class: "row" },
      el("button", { type: "submit" }, "Save roles and organisation"),
      el("button", { type: "button", class: u.suspended ? "" : "danger", onclick: () => setStatus(u, !u.suspended) }, u.suspended ? "Reactivate" : "Suspend"),
      el("button", { type: "button", class: "secondary", onclick: () => resetPassword(u) }, "Reset password"),
      el("button", { type: "button", class: "secondary", onclick: () => { location.hash = "#sessions/" + encodeURIComponent(u.email); } }, "Sessions")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const roles = $("e-roles").value.split(",").map((s) => s.trim()).filter(Boolean);
    await act("Save " + u.email, async () => {
      await rpc("sessiond.auth.v1.UserAdminService/SetUserRoles", { email: u.email, roles });
      await rpc("sessiond.auth.v1.UserAdminService/SetUserOrg", { email: u.email, org_name: $("e-org").value, country: $("e-country").value, org_type: "ORG_TYPE_" + $("e-orgtype").value });
    });
    searchUsers();
    userDetail(u.email);
  });
  box.replaceChildren(
    el("h2", {}, u.display_name || u.email),
    el("p", {}, el("strong", {}, u.email), " · id ", el("code", {}, u.id), " · created ", fmtTime(u.created), " · ",
      u.suspended ? el("span", { class: "badge bad" }, "suspended") : el("span", { class: "badge ok" }, "active")),
    form);
}

async function setStatus(u, suspend) {
  const ok = await confirmDialog(suspend ? "Suspend user" : "Reactivate user",
    suspend ? `Suspend ${u.email}: every session and token of the user stops working on every node at once.` : `Reactivate ${u.email}: the user can log in again.`,
    suspend ? "Suspend" : "Reactivate");
  if (!ok) return;
  await act((suspend ? "Suspend " : "Reactivate ") + u.email, () => rpc("sessiond.auth.v1.UserAdminService/SetUserStatus", { email: u.email, suspended: suspend }));
  searchUsers();
  userDetail(u.email);
}

async function resetPassword(u) {
  const input = el("input", { id: "reset-pw", type: "password", autocomplete: "new-password", minlength: 8 });
  const ok = await confirmDialog("Reset password", `Set a new password for ${u.email}; the user's sessions end everywhere.`, "Set password",
    el("div", {}, el("label", { for: "reset-pw" }, "New password (8–256 characters)"), input));
  if (ok) await act("Reset the password of " + u.email, () => rpc("sessiond.auth.v1.UserAdminService/SetUserPassword", { email: u.email, password: input.value }));
}

$("user-create").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {
    email: $("c-email").value, display_name: $("c-name").value, password: $("c-password").value, org_name: $("c-org").value,
    country: $("c-country").value, org_type: "ORG_TYPE_" + $("c-orgtype").value,
    roles: $("c-roles").value.split(",").map((s) => s.trim()).filter(Boolean),
  };
  const r = await act("Create " + body.email, () => rpc("sessiond.auth.v1.UserAdminService/CreateUser", body));
  if (r) { $("c-password").value = ""; $("user-q").value = body.email; searchUsers(); }
});

// ---------- sessions ----------
function sessionsPage(user) {
  if (user) { $("session-user").value = user; showSessions(); }
  startFeed();
}

$("session-form").addEventListener("submit", (e) => { e.preventDefault(); showSessions(); });

async function showSessions() {
  const q = $("session-user").value.trim();
  const box = $("session-list");
  const u = await findUser(q).catch(() => undefined);
  if (!u) { box.replaceChildren(el("p", { class: "muted" }, "No user " + q + ".")); return; }
  let list = [];
  try {
    list = (await rpc("sessiond.session.v1.SessionService/ListSessions", { user_id: u.id })).sessions || [];
  } catch (e) { say("Sessions: " + e.message, true); return; }
  list.sort((a, b) => String(b.created).localeCompare(String(a.created)));
  const live = list.filter((s) => !s.ended);
  const rows = list.map((s) => el("tr", {},
    el("td", {}, s.platform || ""), el("td", {}, s.device_id || ""), el("td", {}, s.region || ""), el("td", {}, s.client_ip || ""),
    el("td", {}, fmtTime(s.created)), el("td", {}, fmtTime(s.last_refreshed)),
    el("td", {}, s.ended ? el("span", { class: "badge bad" }, "ended: " + (s.end_reason || "")) : el("span", { class: "badge ok" }, "active")),
    el("td", {}, s.ended ? "" : el("button", { type: "button", class: "small danger", "aria-label": "Revoke session " + s.id, onclick: () => revoke(u, s) }, "Revoke"))));
  box.replaceChildren(
    el("h2", {}, `Devices of ${u.email}`),
    el("p", { class: "muted" }, `${live.length} active, ${list.length - live.length} ended`),
    el("button", { type: "button", class: "danger", disabled: live.length === 0, onclick: () => logoutAll(u, live.length) }, "Log out everywhere"),
    el("div", { class: "table-wrap" }, el("table", { "aria-label": "Sessions of " + u.email },
      el("thead", {}, el("tr", {}, ...["Platform", "Device", "Region", "IP", "Created", "Last refresh", "State", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))));
}

async function revoke(u, s) {
  const ok = await confirmDialog("Revoke session", `End ${u.email}'s session on ${s.platform} ${s.device_id} (${s.region}); its tokens are refused on every node.`, "Revoke");
  if (ok) await act("Revoke session", () => rpc("sessiond.session.v1.SessionService/RevokeSession", { session_id: s.id }));
  showSessions();
}

async function logoutAll(u, n) {
  const ok = await confirmDialog("Log out everywhere", `End all ${n} active session(s) of ${u.email} on every node.`, "Log out everywhere");
  if (ok) await act("Log out " + u.email + " everywhere", () => rpc("sessiond.session.v1.SessionService/RevokeUserSessions", { user_id: u.id }));
  showSessions();
}

// startFeed reads WatchRevocations (a Connect server stream: 5-byte
// envelopes, flag 2 ends the stream) and lists the events after the
// initial snapshot, reconnecting from the last index.
async function startFeed() {
  const ctl = new AbortController();
  feedAbort = ctl;
  let from = 0;
  const state = $("feed-state");
  while (!ctl.signal.aborted) {
    try {
      const body = new TextEncoder().encode(JSON.stringify({ from_index: String(from) }));
      const env = new Uint8Array(5 + body.length);
      new DataView(env.buffer).setUint32(1, body.length);
      env.set(body, 5);
      const res = await fetch("/console/rpc/sessiond.session.v1.SessionService/WatchRevocations", {
        method: "POST", signal: ctl.signal, credentials: "same-origin",
        headers: { "Content-Type": "application/connect+json", "Connect-Protocol-Version": "1", "X-Sessiond-Console": "1" }, body: env,
      });
      if (!res.ok) throw new Error("status " + res.status);
      state.textContent = "Watching revocations on " + me.node + ".";
      const reader = res.body.getReader();
      let buf = new Uint8Array(0);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const nb = new Uint8Array(buf.length + value.length);
        nb.set(buf); nb.set(value, buf.length); buf = nb;
        while (buf.length >= 5) {
          const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
          if (buf.length < 5 + len) break;
          const flags = buf[0];
          const msg = JSON.parse(new TextDecoder().decode(buf.subarray(5, 5 + len)) || "{}");
          buf = buf.slice(5 + len);
          if (flags & 2) { if (msg.error) throw new Error(msg.error.message || msg.error.code); continue; }
          if (msg.index) from = Number(msg.index);
          if (!msg.snapshot) for (const ev of msg.events || []) addFeed(ev);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      state.textContent = "Revocation feed interrupted (" + e.message + "); reconnecting…";
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function addFeed(ev) {
  const what = ev.session_id ? "session " + ev.session_id : ev.user_id ? "every token of user " + ev.user_id : "token " + ev.jti;
  const li = el("li", {}, `${new Date().toLocaleTimeString()} · index ${ev.index} · ${what}` + (ev.reason ? " · " + ev.reason : ""));
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > 100) feed.lastChild.remove();
}

// ---------- keys ----------
async function keysPage() {
  try {
    const r = await rpc("sessiond.operator.v1.OperatorService/ListSigningKeys", {});
    $("key-table").tBodies[0].replaceChildren(...(r.keys || []).map((k) => el("tr", {},
      el("td", {}, el("code", {}, k.kid)),
      el("td", {}, el("span", { class: "badge " + (k.state === "active" ? "ok" : k.state === "next" ? "warn" : "") }, k.state)),
      el("td", {}, fmtTime(k.created)), el("td", {}, fmtTime(k.activates)), el("td", {}, fmtTime(k.retires)), el("td", {}, fmtTime(k.expires)))));
  } catch (e) { say("Keys: " + e.message, true); }
}

$("rotate").addEventListener("click", async () => {
  const ok = await confirmDialog("Rotate the signing key", "A new key signs from now on, on every node; the current key keeps verifying the tokens it signed until they expire.", "Rotate now");
  if (!ok) return;
  const r = await act("Rotate the signing key", () => rpc("sessiond.operator.v1.OperatorService/RotateSigningKey", {}));
  if (r) say("New active key " + r.kid + ".");
  keysPage();
});

// ---------- audit ----------
let lastAudit = [];

function auditPage() { loadAudit(); }

function auditQuery() {
  const t = (id) => ($(id).value ? new Date($(id).value).toISOString() : undefined);
  return { user: $("a-user").value, type: $("a-type").value, since: t("a-since"), until: t("a-until"), limit: 500, cluster: $("a-cluster").checked };
}

async function loadAudit() {
  try {
    const r = await rpc("sessiond.operator.v1.OperatorService/QueryAudit", auditQuery());
    lastAudit = r.events || [];
    const types = new Set(lastAudit.map((e) => e.type));
    $("audit-types").replaceChildren(...[...types].sort().map((t) => el("option", { value: t })));
    $("audit-summary").textContent = `${lastAudit.length} event(s)` + ((r.unreachable || []).length ? "; no answer from " + r.unreachable.join(", ") : "");
    $("audit-table").tBodies[0].replaceChildren(...lastAudit.map((e) => el("tr", {},
      el("td", { class: "nowrap" }, fmtTime(e.time)), el("td", {}, e.node), el("td", {}, e.type), el("td", {}, e.principal || ""), el("td", {}, e.user || ""),
      el("td", {}, Object.entries(e.attrs || {}).filter(([k, v]) => v !== "" && k !== "user").map(([k, v]) => k + "=" + v).join(" ")))));
  } catch (e) { say("Audit: " + e.message, true); }
}

$("audit-form").addEventListener("submit", (e) => { e.preventDefault(); loadAudit(); });

function download(name, type, text) {
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function csvCell(v) {
  const s = String(v ?? "");
  // Quote always; neutralise spreadsheet formulas.
  return '"' + (/^[=+\-@]/.test(s) ? "'" + s : s).replace(/"/g, '""') + '"';
}

$("a-csv").addEventListener("click", () => {
  const rows = [["time", "node", "region", "type", "principal", "user", "attrs"]].concat(lastAudit.map((e) =>
    [e.time, e.node, e.region, e.type, e.principal, e.user, Object.entries(e.attrs || {}).map(([k, v]) => k + "=" + v).join(" ")]));
  download("audit.csv", "text/csv", rows.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n");
});
$("a-json").addEventListener("click", () => download("audit.json", "application/json", JSON.stringify(lastAudit, null, 1)));

// ---------- charts ----------
const palette = ["#0b5cad", "#a4161a", "#116329", "#8a4b00", "#6b21a8", "#0e7490"];

async function chartsPage() {
  const tick = async () => {
    try { renderCharts(await rpc("sessiond.operator.v1.OperatorService/Metrics", {})); } catch (e) { say("Charts: " + e.message, true); }
  };
  await tick();
  timers.push(setInterval(tick, 15000));
}

function renderCharts(r) {
  const series = r.series || [];
  const names = [...new Set(series.map((s) => s.name))];
  const out = names.map((name) => {
    const ss = series.filter((s) => s.name === name);
    return chart(ss[0].title || name, ss[0].unit || "per minute", ss.map((s) => ({ label: s.region, points: (s.points || []).map(Number) })), Number(r.step_seconds || 60));
  });
  $("charts").replaceChildren(...out);
  if ((r.unreachable || []).length) say("No answer from " + r.unreachable.join(", "), true);
}

// chart draws one line per series as inline SVG with a text alternative.
function chart(title, unit, lines, step) {
  const W = 360, Hh = 160, P = 34;
  // At least 5 minutes wide, so that a fresh node's few samples sit at
  // the right edge of a readable time axis.
  const n = Math.max(Math.ceil(300 / step), ...lines.map((l) => l.points.length));
  const max = Math.max(1, ...lines.flatMap((l) => l.points));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${Hh}`);
  svg.setAttribute("role", "img");
  const desc = lines.map((l) => `${l.label}: last ${l.points.at(-1) ?? 0}, peak ${Math.max(0, ...l.points)}`).join("; ");
  svg.setAttribute("aria-label", `${title} (${unit}): ${desc}`);
  const add = (tag, a) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(a)) e.setAttribute(k, v); svg.append(e); return e; };
  add("line", { x1: P, y1: Hh - 20, x2: W - 4, y2: Hh - 20, stroke: "#8b929c" });
  add("line", { x1: P, y1: 6, x2: P, y2: Hh - 20, stroke: "#8b929c" });
  add("text", { x: 2, y: 14, "font-size": 10, fill: "#4b5563" }).textContent = fmtNum(max);
  add("text", { x: 2, y: Hh - 20, "font-size": 10, fill: "#4b5563" }).textContent = "0";
  add("text", { x: P, y: Hh - 6, "font-size": 10, fill: "#4b5563" }).textContent = `-${Math.round(((n - 1) * step) / 60)} min`;
  add("text", { x: W - 30, y: Hh - 6, "font-size": 10, fill: "#4b5563" }).textContent = "now";
  lines.forEach((l, i) => {
    const pts = l.points.map((v, j) => `${P + ((W - P - 4) * (j + n - l.points.length)) / (n - 1)},${Hh - 20 - ((Hh - 26) * v) / max}`).join(" ");
    add("polyline", { points: pts, fill: "none", stroke: palette[i % palette.length], "stroke-width": 2 });
    const last = pts.split(" ").at(-1);
    if (last) {
      const [cx, cy] = last.split(",");
      add("circle", { cx, cy, r: 3, fill: palette[i % palette.length] });
    }
  });
  const legend = el("div", { class: "legend" }, lines.map((l, i) => {
    const s = el("span", {}, l.label);
    s.style.setProperty("--c", palette[i % palette.length]); // CSSOM, allowed by the CSP
    return s;
  }));
  return el("figure", { class: "card chart" }, el("figcaption", {}, el("strong", {}, title), " ", el("span", { class: "muted" }, unit)), svg, legend);
}

function fmtNum(v) { return v >= 1000 ? (v / 1000).toFixed(1) + "k" : String(Math.round(v * 100) / 100); }

// ---------- start ----------
(async () => {
  try { loggedIn(await post("/console/me")); } catch (_) { showLogin(); }
})();
