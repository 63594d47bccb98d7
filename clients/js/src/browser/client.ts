/**
 * The browser session client: login, refresh before expiry with one
 * refresh across tabs, cookie mode, logout, devices and force login.
 *
 * @module
 */
import { LoginConflictError, SessiondError, type ExistingSession } from "../errors.js";
import { CheckReason, WEBSOCKET_SUBPROTOCOL, WEBSOCKET_TOKEN_PREFIX, parseEndReason, sessionEndFromClose, type SessionEndReason } from "../reasons.js";
import { Emitter, type SessionEndSource } from "./events.js";
import { defaultLock, type ChannelFactory, type ChannelLike, type CrossTabLock } from "./lock.js";

/** A client platform; one live session per user and platform. */
export type Platform = "web" | "windows" | "mac" | "android" | "ios" | "other";

/** The part of the Web Storage API the client uses (only for non-secret metadata). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Options of {@link SessiondClient}. */
export interface ClientOptions {
  /** Base URL of sessiond's HTTP routes (a node, or the app's reverse proxy), e.g. `https://auth.example.com`. */
  baseUrl: string;
  /** The platform this client logs in as (default `web`). */
  platform?: Platform;
  /** This device's id (default: a random id kept in `storage`, else per client). */
  deviceId?: string;
  /**
   * `cookie` (default): the refresh token is an HttpOnly cookie that script
   * never sees. `memory`: the refresh token is kept in this client's memory
   * only (for runtimes without cookies; it is not shared across tabs).
   */
  mode?: "cookie" | "memory";
  /** Refresh this long before the access token expires (default 60 s). */
  refreshBeforeExpiryMs?: number;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** The fetch `credentials` of sessiond calls (default `include`, so the cookie goes cross-origin too). */
  credentials?: RequestCredentials;
  /** The cross-tab lock (default: Web Locks, else BroadcastChannel; see `defaultLock`). */
  lock?: CrossTabLock;
  /** Opens the channel tabs share tokens over (default BroadcastChannel; null: this tab alone). */
  channel?: ChannelFactory | null;
  /** Where the non-secret refresh bookkeeping lives (default `localStorage`; null: none). */
  storage?: StorageLike | null;
  /** Prefix of the lock, channel and storage names (default `sessiond`); one per sessiond cluster. */
  namespace?: string;
  /** How long a tab waits for a token another tab refreshed before refreshing itself (default 3 s). */
  tokenWaitMs?: number;
  /** How long one call to sessiond may take (default 10 s). */
  requestTimeoutMs?: number;
}

/** The current login of this tab. */
export interface SessionInfo {
  sessionId: string;
  /** When the access token expires (ms since the epoch). */
  expiresAt: number;
}

/** One of the user's live sessions (a device). */
export interface Device {
  sessionId: string;
  platform: string;
  deviceId: string;
  region: string;
  created: string;
  lastRefreshed: string;
  /** True for the session of the token that asked. */
  current: boolean;
  clientIp: string;
  userAgent: string;
}

/** Login input. */
export interface LoginInput {
  email: string;
  password: string;
}

interface TokenState {
  accessToken: string;
  expiresAt: number;
  sessionId: string;
  /** Generation: grows with every login or refresh of any tab. */
  gen: number;
}

interface Meta {
  gen: number;
  expiresAt: number;
  sessionId: string;
}

type TabMsg =
  | { t: "tokens"; gen: number; accessToken: string; expiresAt: number; sessionId: string }
  | { t: "need-token"; gen: number }
  | { t: "ended"; reason: SessionEndReason };

/**
 * A sessiond session in a browser.
 *
 * The access token lives in memory only (this tab's, and the tabs it
 * shares it with over a BroadcastChannel). In cookie mode the refresh
 * token is an HttpOnly, Secure, SameSite=Strict cookie scoped to `/auth`
 * that script cannot read. Before the access token expires, every tab
 * wakes up, but under a cross-tab lock only the first one refreshes: the
 * others see (in `storage`, which holds only a generation number, expiry
 * and session id) that a newer token exists and take it from the channel.
 *
 * Events: `tokens` (a new access token), `session-ended` (logout here or
 * in another tab, a refresh refused, an API answering that the session
 * ended, or a WebSocket closed with a session-end code).
 */
export class SessiondClient extends Emitter {
  readonly #base: string;
  readonly #platform: Platform;
  readonly #deviceId: string;
  readonly #mode: "cookie" | "memory";
  readonly #margin: number;
  readonly #fetch: typeof fetch;
  readonly #credentials: RequestCredentials;
  readonly #lock: CrossTabLock;
  readonly #channel: ChannelLike | undefined;
  readonly #storage: StorageLike | undefined;
  readonly #ns: string;
  readonly #tokenWait: number;
  readonly #timeout: number;
  #state: TokenState | undefined;
  #refreshToken: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inflight: Promise<boolean> | undefined;
  #waiters = new Set<() => void>();
  #closed = false;

  constructor(opts: ClientOptions) {
    super();
    const u = new URL(opts.baseUrl);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new TypeError(`sessiond: baseUrl ${opts.baseUrl}: want http(s)://host`);
    this.#base = u.origin + u.pathname.replace(/\/+$/, "");
    this.#platform = opts.platform ?? "web";
    this.#mode = opts.mode ?? "cookie";
    this.#margin = opts.refreshBeforeExpiryMs ?? 60_000;
    const f = opts.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError("sessiond: no fetch in this environment: pass options.fetch");
    this.#fetch = f.bind(globalThis);
    this.#credentials = opts.credentials ?? "include";
    this.#lock = opts.lock ?? defaultLock();
    this.#ns = opts.namespace ?? "sessiond";
    this.#tokenWait = opts.tokenWaitMs ?? 3_000;
    this.#timeout = opts.requestTimeoutMs ?? 10_000;
    const storage = opts.storage === undefined ? (globalThis as { localStorage?: StorageLike }).localStorage : opts.storage;
    this.#storage = storage ?? undefined;
    const open =
      opts.channel === undefined
        ? typeof globalThis.BroadcastChannel === "function"
          ? (n: string) => new BroadcastChannel(n) as unknown as ChannelLike
          : undefined
        : (opts.channel ?? undefined);
    this.#channel = open?.(`${this.#ns}:tabs`);
    (this.#channel as { unref?: () => void } | undefined)?.unref?.(); // Node: keeps no process alive
    this.#channel?.addEventListener("message", this.#onMessage);
    this.#deviceId = opts.deviceId ?? this.#storedDeviceId();
  }

  /** This tab's login, or undefined when logged out. */
  get session(): SessionInfo | undefined {
    const s = this.#state;
    return s ? { sessionId: s.sessionId, expiresAt: s.expiresAt } : undefined;
  }

  /** The device id sent at login. */
  get deviceId(): string {
    return this.#deviceId;
  }

  /**
   * Logs in. A 409 (another device of this platform is logged in) throws
   * {@link LoginConflictError} naming that device: ask the user, then call
   * {@link forceLogin}.
   */
  async login(input: LoginInput): Promise<SessionInfo> {
    return this.#login(input, false);
  }

  /** Logs in and ends the session of any other device of this platform, on every node. */
  async forceLogin(input: LoginInput): Promise<SessionInfo> {
    return this.#login(input, true);
  }

  async #login(input: LoginInput, force: boolean): Promise<SessionInfo> {
    const res = await this.#call("POST", "/auth/login", {
      json: {
        email: input.email,
        password: input.password,
        platform: this.#platform,
        device_id: this.#deviceId,
        force,
        refresh_cookie: this.#mode === "cookie",
      },
    });
    if (res.status === 409) {
      const body = await readJSON(res);
      const e = (body.existing_session ?? body.existingSession ?? {}) as Record<string, unknown>;
      const existing: ExistingSession = {
        sessionId: str(e.session_id ?? e.sessionId),
        deviceId: str(e.device_id ?? e.deviceId),
        platform: str(e.platform),
        region: str(e.region),
        created: str(e.created),
      };
      throw new LoginConflictError(str(body.error) || "conflict", str(body.message), existing);
    }
    if (!res.ok) throw await errorOf(res);
    const s = this.#adopt(await readJSON(res), this.#readMeta()?.gen ?? this.#state?.gen ?? 0);
    return { sessionId: s.sessionId, expiresAt: s.expiresAt };
  }

  /**
   * Makes this tab logged in if the browser still has a session (at page
   * load): takes the token from another tab when one has it, else
   * refreshes with the cookie. Resolves to false when there is no session.
   */
  async restore(): Promise<boolean> {
    if (this.#state) return true;
    const meta = this.#readMeta();
    // Open tabs answer within milliseconds; when none does (all were
    // closed), do not keep the page waiting long before using the cookie.
    if (meta && meta.expiresAt > Date.now() && (await this.#awaitGen(meta.gen, Math.min(this.#tokenWait, 500)))) return true;
    if (this.#mode === "memory" && !this.#refreshToken) return false;
    try {
      // No tab answered for meta.gen: refresh with the cookie rather than wait for it again.
      return await this.#refresh(meta?.gen ?? 0);
    } catch (err) {
      if (err instanceof SessiondError && err.status === 401) return false;
      throw err;
    }
  }

  /**
   * A valid access token, refreshed first when it expires within the
   * refresh margin; undefined when logged out.
   */
  async accessToken(): Promise<string | undefined> {
    const s = this.#state;
    if (!s) return undefined;
    if (s.expiresAt - Date.now() > Math.min(this.#margin, 5_000)) return s.accessToken;
    await this.refresh();
    return this.#state?.accessToken;
  }

  /**
   * Refreshes the access token, once across tabs: calls in this tab share
   * one attempt, and under the cross-tab lock a tab that finds a token
   * newer than the one it had takes it from the tab that refreshed instead
   * of refreshing again. Resolves to true when this tab then holds a
   * token; a refusal (the session ended) emits `session-ended` and
   * resolves to false.
   */
  refresh(): Promise<boolean> {
    return this.#refresh(this.#state?.gen ?? 0);
  }

  /** refresh, where knownGen is the newest generation this tab knows of (its own, or one it waited for in vain). */
  #refresh(knownGen: number): Promise<boolean> {
    if (this.#inflight) return this.#inflight;
    const p = this.#lock.run(`${this.#ns}:refresh`, () => this.#refreshLocked(knownGen));
    this.#inflight = p;
    const clear = () => {
      if (this.#inflight === p) this.#inflight = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  async #refreshLocked(knownGen: number): Promise<boolean> {
    if (this.#closed) return false;
    const meta = this.#readMeta();
    if (meta && meta.gen > knownGen && meta.expiresAt - Date.now() > Math.min(this.#margin, 5_000)) {
      // Another tab logged in or refreshed since this one decided to.
      if (await this.#awaitGen(meta.gen)) return true;
    }
    const hadSession = this.#state !== undefined;
    const res = await this.#call("POST", "/auth/token", this.#mode === "memory" ? { json: { refresh_token: this.#refreshToken ?? "" } } : {});
    if (res.status === 401) {
      const err = await errorOf(res);
      if (hadSession || meta) {
        this.#ended(err.code === "refresh_token_reused" ? "refresh_reuse" : "unknown", "refresh", true);
      }
      if (!hadSession) throw err;
      return false;
    }
    if (!res.ok) throw await errorOf(res);
    this.#adopt(await readJSON(res), Math.max(meta?.gen ?? 0, this.#state?.gen ?? 0));
    return true;
  }

  /** Logs this session out on every node and tells the other tabs. */
  async logout(): Promise<void> {
    const s = this.#state;
    const init: CallInit = s ? { bearer: s.accessToken } : this.#mode === "memory" ? { json: { refresh_token: this.#refreshToken ?? "" } } : {};
    const res = await this.#call("POST", "/auth/logout", init);
    if (!res.ok && res.status !== 401) throw await errorOf(res);
    this.#ended("logout", "logout", true);
  }

  /** Logs the user out of every session (every device); resolves to how many ended. */
  async logoutAll(): Promise<number> {
    const res = await this.#authed("POST", "/auth/logout-all");
    if (!res.ok) throw await errorOf(res);
    const body = await readJSON(res);
    this.#ended("logout_all", "logout", true);
    return Number(body.ended ?? 0);
  }

  /** The user's live sessions (devices). */
  async devices(): Promise<Device[]> {
    const res = await this.#authed("GET", "/auth/sessions");
    if (!res.ok) throw await errorOf(res);
    const body = await readJSON(res);
    const list = Array.isArray(body.sessions) ? (body.sessions as Record<string, unknown>[]) : [];
    return list.map((d) => ({
      sessionId: str(d.session_id ?? d.sessionId),
      platform: str(d.platform),
      deviceId: str(d.device_id ?? d.deviceId),
      region: str(d.region),
      created: str(d.created),
      lastRefreshed: str(d.last_refreshed ?? d.lastRefreshed),
      current: d.current === true,
      clientIp: str(d.client_ip ?? d.clientIp),
      userAgent: str(d.user_agent ?? d.userAgent),
    }));
  }

  /** Ends one of the user's sessions (kicks a device). */
  async endDevice(sessionId: string): Promise<void> {
    const res = await this.#authed("DELETE", `/auth/sessions/${encodeURIComponent(sessionId)}`);
    if (!res.ok) throw await errorOf(res);
    if (sessionId === this.#state?.sessionId) this.#ended("logout", "logout", true);
  }

  /**
   * fetch with this session's access token. A 401 saying the token expired
   * or its key is unknown refreshes once and retries; a 401 saying the
   * session ended (the Node middleware's `session_ended`,
   * `user_logged_out_everywhere`, `revoked`) emits `session-ended`.
   */
  async fetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
    const once = async () => {
      const tok = await this.accessToken();
      const headers = new Headers(init.headers);
      if (tok) headers.set("Authorization", `Bearer ${tok}`);
      return this.#fetch(input, { ...init, headers });
    };
    let res = await once();
    if (res.status !== 401 || !this.#state) return res;
    const body = await readJSON(res.clone());
    const code = str(body.error);
    if (code === CheckReason.Expired || code === CheckReason.UnknownKey || code === CheckReason.NotYetValid) {
      if (await this.refresh()) res = await once();
      return res;
    }
    if (code === CheckReason.SessionEnded || code === CheckReason.Revoked || code === CheckReason.LoggedOutEverywhere || code === CheckReason.SessionNotFound) {
      const reason = parseEndReason(str(body.end_reason ?? body.endReason)) ?? (code === CheckReason.LoggedOutEverywhere ? "logout_all" : "unknown");
      this.#ended(reason, "request", true);
    }
    return res;
  }

  /**
   * Tells the client a WebSocket of this session closed. A close code of
   * {@link SESSION_CLOSE_CODES} ends the session here and in the other tabs
   * (`session-ended` with source `websocket`); it returns whether it did.
   */
  handleWebSocketClose(ev: { code: number; reason?: string }): boolean {
    const reason = sessionEndFromClose(ev.code, ev.reason);
    if (reason === undefined || !this.#state) return false;
    this.#ended(reason, "websocket", true);
    return true;
  }

  /**
   * Opens a WebSocket on this session: the access token travels as the
   * subprotocol `sessiond.token.<token>` beside `sessiond.v1` (the server
   * selects the latter; with no token the refresh cookie may authenticate
   * it), and a close with a session-end code ends the session here and in
   * the other tabs ({@link handleWebSocketClose}).
   */
  async webSocket(url: string | URL, WS: typeof WebSocket | undefined = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket): Promise<WebSocket> {
    if (!WS) throw new TypeError("sessiond: no WebSocket in this environment: pass one");
    const tok = await this.accessToken();
    const ws = new WS(url, tok ? [WEBSOCKET_SUBPROTOCOL, WEBSOCKET_TOKEN_PREFIX + tok] : [WEBSOCKET_SUBPROTOCOL]);
    ws.addEventListener("close", (ev) => this.handleWebSocketClose(ev));
    return ws;
  }

  /** Stops the refresh timer and closes the channel; the session itself stays. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#channel?.removeEventListener("message", this.#onMessage);
    this.#channel?.close();
    for (const w of this.#waiters) w();
  }

  // --- internals ---

  #adopt(body: Record<string, unknown>, baseGen: number): TokenState {
    const accessToken = str(body.access_token ?? body.accessToken);
    const expiresIn = Number(body.expires_in ?? body.expiresIn ?? 0);
    const sessionId = str(body.session_id ?? body.sessionId);
    if (!accessToken || !(expiresIn > 0)) throw new SessiondError(502, "bad_response", "the token answer has no access_token or expires_in");
    if (this.#mode === "memory") this.#refreshToken = str(body.refresh_token ?? body.refreshToken) || this.#refreshToken;
    const s: TokenState = { accessToken, expiresAt: Date.now() + expiresIn * 1000, sessionId, gen: baseGen + 1 };
    this.#set(s, false);
    this.#writeMeta({ gen: s.gen, expiresAt: s.expiresAt, sessionId });
    this.#post({ t: "tokens", gen: s.gen, accessToken, expiresAt: s.expiresAt, sessionId });
    return s;
  }

  #set(s: TokenState, fromOtherTab: boolean): void {
    this.#state = s;
    this.#schedule();
    for (const w of this.#waiters) w();
    this.emit("tokens", { expiresAt: s.expiresAt, sessionId: s.sessionId, fromOtherTab });
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const s = this.#state;
    if (!s || this.#closed) return;
    const delay = Math.max(1_000, s.expiresAt - Date.now() - this.#margin);
    const t = setTimeout(() => {
      this.#timer = undefined;
      this.refresh().catch(() => {
        // A network error: try again shortly, while the token lives.
        if (this.#state && this.#state.expiresAt > Date.now()) this.#timer = setTimeout(() => void this.refresh().catch(() => {}), 5_000);
      });
    }, delay);
    (t as { unref?: () => void }).unref?.();
    this.#timer = t;
  }

  #ended(reason: SessionEndReason, source: SessionEndSource, tell: boolean): void {
    const had = this.#state !== undefined;
    this.#state = undefined;
    this.#refreshToken = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (tell) {
      this.#storage?.removeItem(`${this.#ns}:meta`);
      this.#post({ t: "ended", reason });
    }
    if (had || source !== "other-tab") this.emit("session-ended", { reason, source });
  }

  /** Waits until this tab holds a token of generation gen or later, asking the other tabs for it. */
  async #awaitGen(gen: number, waitMs = this.#tokenWait): Promise<boolean> {
    if ((this.#state?.gen ?? 0) >= gen) return true;
    if (!this.#channel) return false;
    this.#post({ t: "need-token", gen });
    return new Promise<boolean>((resolve) => {
      const done = () => {
        if ((this.#state?.gen ?? 0) < gen && !this.#closed) return;
        clearTimeout(t);
        this.#waiters.delete(done);
        resolve((this.#state?.gen ?? 0) >= gen);
      };
      const t = setTimeout(() => {
        this.#waiters.delete(done);
        resolve((this.#state?.gen ?? 0) >= gen);
      }, waitMs);
      this.#waiters.add(done);
    });
  }

  #onMessage = (ev: { data: unknown }): void => {
    const m = ev.data as TabMsg;
    if (!m || typeof m !== "object" || this.#closed) return;
    switch (m.t) {
      case "tokens":
        if (typeof m.gen === "number" && m.gen > (this.#state?.gen ?? 0) && typeof m.accessToken === "string") {
          this.#set({ accessToken: m.accessToken, expiresAt: m.expiresAt, sessionId: m.sessionId, gen: m.gen }, true);
        }
        break;
      case "need-token": {
        const s = this.#state;
        if (s && s.gen >= m.gen) this.#post({ t: "tokens", gen: s.gen, accessToken: s.accessToken, expiresAt: s.expiresAt, sessionId: s.sessionId });
        break;
      }
      case "ended":
        if (this.#state) this.#ended(m.reason, "other-tab", false);
        break;
    }
  };

  #post(m: TabMsg): void {
    try {
      this.#channel?.postMessage(m);
    } catch {
      // a closed channel: nothing to tell
    }
  }

  #readMeta(): Meta | undefined {
    try {
      const raw = this.#storage?.getItem(`${this.#ns}:meta`);
      if (!raw) return undefined;
      const m = JSON.parse(raw) as Meta;
      return typeof m.gen === "number" && typeof m.expiresAt === "number" ? m : undefined;
    } catch {
      return undefined;
    }
  }

  #writeMeta(m: Meta): void {
    try {
      this.#storage?.setItem(`${this.#ns}:meta`, JSON.stringify(m));
    } catch {
      // storage full or denied: tabs then coordinate through the channel only
    }
  }

  #storedDeviceId(): string {
    const key = `${this.#ns}:device`;
    try {
      const v = this.#storage?.getItem(key);
      if (v) return v;
    } catch {
      // no storage
    }
    const b = new Uint8Array(12);
    globalThis.crypto.getRandomValues(b);
    const id = "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    try {
      this.#storage?.setItem(key, id);
    } catch {
      // no storage
    }
    return id;
  }

  async #authed(method: string, path: string): Promise<Response> {
    const tok = await this.accessToken();
    if (!tok) throw new SessiondError(401, "not_logged_in", "log in first");
    return this.#call(method, path, { bearer: tok });
  }

  /**
   * Calls a sessiond route. A 503 (no leader during an election, the write
   * not accepted) is retried up to three times within about 3 s: every
   * route the client calls is safe to repeat (a refresh repeated within
   * 10 s gets the same pair; a login from the same device replaces its
   * session).
   */
  async #call(method: string, path: string, init: CallInit): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (init.bearer) headers.Authorization = `Bearer ${init.bearer}`;
    let body: string | undefined;
    if (init.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(init.json);
    }
    for (let attempt = 0; ; attempt++) {
      const res = await this.#fetch(this.#base + path, { method, headers, body, credentials: this.#credentials, cache: "no-store", signal: AbortSignal.timeout(this.#timeout) });
      if (res.status !== 503 || attempt === 3 || this.#closed) return res;
      const ra = Number(res.headers.get("Retry-After"));
      const wait = ra > 0 && ra <= 2 ? ra * 1000 : 250 * 2 ** attempt;
      await res.body?.cancel().catch(() => {});
      await new Promise((r) => setTimeout(r, wait * (0.75 + Math.random() / 2)));
    }
  }
}

interface CallInit {
  json?: unknown;
  bearer?: string;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

async function readJSON(res: Response): Promise<Record<string, unknown>> {
  try {
    const v: unknown = await res.json();
    return v && typeof v === "object" ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

async function errorOf(res: Response): Promise<SessiondError> {
  const body = await readJSON(res);
  const ra = res.headers.get("Retry-After");
  return new SessiondError(res.status, str(body.error) || `http_${res.status}`, str(body.message) || res.statusText, ra ? Number(ra) : undefined);
}
