// @tuisong/device: the device side of tuisong (docs/PROTOCOL.md, /client/v1) for a mini
// program, a web front end or a node process. One ES module, no dependencies, no build
// step. The WebSocket constructor, fetch and the cursor storage are injected, so the same
// file runs in a browser (the globals, localStorage) and in node 20 (the `ws` package).

/** The close code of a policy refusal (bad hello, auth): reconnecting would not help. */
const CLOSE_POLICY = 1008;

/**
 * An in-memory storage with the Web Storage shape (getItem/setItem/removeItem): the
 * default cursor store. Pass `localStorage` (or anything with these methods, sync or
 * async) to keep the cursor across reloads.
 */
export class MemoryStorage {
  constructor() {
    /** @type {Map<string, string>} */
    this.map = new Map();
  }
  /** @param {string} key */
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  /** @param {string} key @param {string} value */
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  /** @param {string} key */
  removeItem(key) {
    this.map.delete(key);
  }
}

/** An HTTP error of the device API: `{"error": {"code", "message"}}` with its status. */
export class TuisongError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.name = 'TuisongError';
    this.status = status;
    this.code = code;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential from `baseMs` by
 * `factor`, capped at `maxMs`, with "equal jitter" (a random point in the upper
 * `jitter` fraction of the step, so clients that dropped together spread out).
 * @param {number} attempt
 * @param {{baseMs?: number, maxMs?: number, factor?: number, jitter?: number}} [o]
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, o = {}, random = Math.random) {
  const base = o.baseMs ?? 500;
  const max = o.maxMs ?? 30000;
  const factor = o.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, o.jitter ?? 0.5));
  const step = Math.min(max, base * Math.pow(factor, Math.min(attempt, 60)));
  return Math.round(step * (1 - jitter) + step * jitter * random());
}

/**
 * A device: one user (device token) on one device name. Events: `message`, `recall`,
 * `opened`, `welcome`, `error`, `state`.
 */
export class TuisongDevice {
  /** @param {import('../index').DeviceOptions} [opts] */
  constructor(opts = {}) {
    const loc = typeof location !== 'undefined' ? location : null;
    this.baseUrl = String(opts.baseUrl || (loc ? loc.origin : '')).replace(/\/+$/, '');
    if (!this.baseUrl) throw new TypeError('baseUrl is required outside a browser');
    this.token = opts.token || null;
    this.device = opts.device || 'device';
    this.autoAck = opts.autoAck !== false;
    this.storage = opts.storage || new MemoryStorage();
    this.cursorKey = opts.cursorKey || 'tuisong.cursor';
    this.backoff = { baseMs: 500, maxMs: 30000, factor: 2, jitter: 0.5, ...(opts.backoff || {}) };
    this.staleAfterMs = opts.staleAfterMs ?? 75000;
    this.openTimeoutMs = opts.openTimeoutMs ?? 10000;
    this.random = opts.random || Math.random;
    this._fetch = opts.fetch || (typeof fetch !== 'undefined' ? fetch.bind(globalThis) : null);
    this._WebSocket = opts.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    /** Cards received in this session by msgid (a recall deletes its card). */
    this.messages = new Map();
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    this._seen = new Set(); // msgids already emitted, so a repeat is never shown twice
    this._cursor = null; // loaded from storage on the first connect
    this._state = 'idle';
    this._attempt = 0;
    this._timer = null;
    this._staleTimer = null;
    this._want = false; // connect() was called and close() was not
    this._gen = 0;
    this.socket = null;
    this.userId = null;
    this._welcomeWaiters = [];
    this._openWaiters = new Map();
  }

  // ------------------------------------------------------------------ events

  /** @param {string} event @param {Function} fn @returns {() => void} an unsubscribe */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** @param {string} event @param {Function} fn */
  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  /** @param {string} event @param {Function} fn */
  once(event, fn) {
    const off = this.on(event, (...a) => { off(); fn(...a); });
    return off;
  }

  /** @param {string} event @param {any} value */
  _emit(event, value) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (e) {
        if (event !== 'error') this._emit('error', e);
      }
    }
  }

  // ------------------------------------------------------------------ HTTP

  /**
   * One device API call; resolves to the parsed answer, rejects with TuisongError.
   * @param {string} method @param {string} path
   * @param {{body?: any, query?: Record<string, any>, headers?: Record<string,string>, auth?: boolean}} [o]
   */
  async request(method, path, o = {}) {
    if (!this._fetch) throw new TypeError('no fetch: pass opts.fetch');
    let url = this.baseUrl + path;
    if (o.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(o.query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const s = q.toString();
      if (s) url += '?' + s;
    }
    const headers = { Accept: 'application/json', ...(o.headers || {}) };
    if (o.auth !== false) {
      if (!this.token) throw new TuisongError(401, 'unauthorized', 'no device token: createUser() or pass opts.token');
      headers.Authorization = 'Bearer ' + this.token;
    }
    let body;
    if (o.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(o.body);
    }
    const r = await this._fetch(url, { method, headers, body });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!r.ok) {
      const err = (data && data.error) || {};
      throw new TuisongError(r.status, err.code || 'http_' + r.status, err.message || text || r.statusText);
    }
    return data;
  }

  /**
   * `POST /client/v1/users`: a new device user; this device then uses its token.
   * @param {string} nickname 1–32 characters
   */
  async createUser(nickname) {
    const u = await this.request('POST', '/client/v1/users', { body: { nickname }, auth: false });
    this.token = u.device_token;
    this.userId = u.user_id;
    return u;
  }

  /** Use an existing device token (drops a live socket, which belonged to another user). */
  useToken(token) {
    const was = this._want;
    if (this.socket || this._want) this.close();
    this.token = token;
    this._cursor = null;
    if (was) this.connect();
  }

  /** `wx.login`: `{code, errMsg: "login:ok"}` for this app. @param {string} appid */
  login(appid) {
    return this.request('POST', '/client/v1/login', { body: { appid } });
  }

  /**
   * `wx.requestSubscribeMessage` with the user's answers. Without `decisions` every id is
   * accepted. Resolves to WeChat's result: `{errMsg: "requestSubscribeMessage:ok", <id>:
   * "accept"|"reject"|"filter"}` or `{errMsg: "requestSubscribeMessage:fail …", errCode}`.
   * @param {{appid: string, tmplIds: string[], decisions?: Record<string,string>, keep?: boolean}} o
   */
  requestSubscribeMessage(o) {
    const decisions = o.decisions || Object.fromEntries((o.tmplIds || []).map((id) => [id, 'accept']));
    return this.request('POST', '/client/v1/subscribe', {
      body: { appid: o.appid, tmplIds: o.tmplIds, decisions, keep: !!o.keep },
    });
  }

  /** `wx.getSetting({withSubscriptions: true})` plus quiet hours. @param {string} appid */
  getSettings(appid) {
    return this.request('GET', '/client/v1/settings', { query: { appid } });
  }

  /** `PUT /client/v1/settings`: mainSwitch, itemSettings, quietHours. */
  updateSettings(o) {
    return this.request('PUT', '/client/v1/settings', { body: o });
  }

  /** `GET /client/v1/me`: `{user_id, nickname}` of this device token. */
  me() {
    return this.request('GET', '/client/v1/me');
  }

  /** `GET /client/v1/apps`: `{apps: [{appid, name}]}`. */
  apps() {
    return this.request('GET', '/client/v1/apps');
  }

  /** `GET /client/v1/apps/{appid}/templates`: the app's name and templates. */
  templates(appid) {
    return this.request('GET', '/client/v1/apps/' + encodeURIComponent(appid) + '/templates');
  }

  /** `GET /client/v1/inbox`: the frames after `cursor` over HTTP. */
  inbox(o = {}) {
    return this.request('GET', '/client/v1/inbox', { query: { cursor: o.cursor ?? 0, limit: o.limit } });
  }

  // ------------------------------------------------------------------ frames

  /** Sends a frame if the socket is open; false otherwise. */
  _send(frame) {
    const s = this.socket;
    if (!s || s.readyState !== 1 || this._state !== 'online') return false;
    s.send(JSON.stringify(frame));
    return true;
  }

  /**
   * The card is on screen: makes the message `delivered`. By the socket when online,
   * else over HTTP. Resolves to true when sent by the socket, else the HTTP answer.
   * @param {number} msgid
   */
  async ack(msgid) {
    if (this._send({ type: 'ack', msgid })) return true;
    return this.request('POST', '/client/v1/messages/' + msgid + '/ack', { headers: { 'X-Device': this.device } });
  }

  /**
   * The user tapped the card (counts a click). Resolves to `{msgid, appid, page}`.
   * @param {number} msgid
   */
  open(msgid) {
    if (this._state === 'online') {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          this._openWaiters.delete(msgid);
          reject(new Error('no answer to open ' + msgid));
        }, this.openTimeoutMs);
        const list = this._openWaiters.get(msgid) || [];
        list.push({ resolve, reject, t });
        this._openWaiters.set(msgid, list);
        if (!this._send({ type: 'open', msgid })) {
          this._settleOpen(msgid, null, new Error('socket closed'));
        }
      }).catch((e) => {
        if (e && e.message === 'socket closed') return this._httpOpen(msgid);
        throw e;
      });
    }
    return this._httpOpen(msgid);
  }

  _httpOpen(msgid) {
    return this.request('POST', '/client/v1/messages/' + msgid + '/open', { headers: { 'X-Device': this.device } });
  }

  _settleOpen(msgid, value, err) {
    const list = this._openWaiters.get(msgid);
    if (!list) return;
    this._openWaiters.delete(msgid);
    for (const w of list) {
      clearTimeout(w.t);
      if (err) w.reject(err); else w.resolve(value);
    }
  }

  /**
   * "不再接收此类消息": turns the card's template off for this user. Resolves to
   * `{template_id, status: "reject"}`.
   * @param {number} msgid
   */
  unsubscribe(msgid) {
    return this.request('POST', '/client/v1/messages/' + msgid + '/unsubscribe', { headers: { 'X-Device': this.device } });
  }

  // ------------------------------------------------------------------ cursor

  /** The highest seq seen (null before the first connect loaded it). */
  get cursor() {
    return this._cursor;
  }

  get state() {
    return this._state;
  }

  /** The stored cursor, or the one in memory if higher (another tab may have moved it). */
  async _loadCursor() {
    const v = await this.storage.getItem(this.cursorKey);
    const n = Number(v);
    const stored = v !== null && Number.isSafeInteger(n) && n >= 0 ? n : 0;
    this._cursor = Math.max(this._cursor || 0, stored);
  }

  _saveCursor() {
    try {
      const p = this.storage.setItem(this.cursorKey, String(this._cursor));
      if (p && typeof p.catch === 'function') p.catch((e) => this._emit('error', e));
    } catch (e) {
      this._emit('error', e);
    }
  }

  // ------------------------------------------------------------------ socket

  _setState(state, extra) {
    this._state = state;
    this._emit('state', { state, attempt: this._attempt, ...(extra || {}) });
  }

  /**
   * Opens the socket and keeps it open (reconnecting with backoff) until close() or a
   * fatal refusal. Resolves on the next `welcome`; rejects on close() or a fatal close.
   * @returns {Promise<{type: 'welcome', user_id: string, cursor: number}>}
   */
  connect() {
    const p = new Promise((resolve, reject) => this._welcomeWaiters.push({ resolve, reject }));
    p.catch(() => {}); // a caller that ignores the promise gets the `error`/`state` events
    if (!this._want) {
      this._want = true;
      this._attempt = 0;
      this._open();
    } else if (this._state === 'online' && this._lastWelcome) {
      this._settleWelcome(this._lastWelcome, null);
    }
    return p;
  }

  _settleWelcome(value, err) {
    const list = this._welcomeWaiters;
    this._welcomeWaiters = [];
    for (const w of list) if (err) w.reject(err); else w.resolve(value);
  }

  async _open() {
    if (!this._want) return;
    const gen = ++this._gen; // a close() or another _open() while this one waits wins
    if (!this._WebSocket) {
      this._fatal(new TypeError('no WebSocket: pass opts.WebSocket'));
      return;
    }
    if (!this.token) {
      this._fatal(new TuisongError(401, 'unauthorized', 'no device token'));
      return;
    }
    this._setState('connecting');
    try {
      await this._loadCursor();
    } catch (e) {
      this._emit('error', e);
      if (this._cursor === null) this._cursor = 0;
    }
    if (!this._want || gen !== this._gen) return;
    const url = this.baseUrl.replace(/^http/, 'ws') + '/client/v1/ws?token=' + encodeURIComponent(this.token);
    let sock;
    try {
      sock = new this._WebSocket(url);
    } catch (e) {
      this._emit('error', e);
      this._retry();
      return;
    }
    this.socket = sock;
    let refused = null; // an HTTP refusal of the upgrade (node `ws` only)
    const mine = () => this.socket === sock;
    sock.onopen = () => {
      if (!mine()) return;
      sock.send(JSON.stringify({ type: 'hello', cursor: this._cursor, device: this.device }));
      this._touch();
    };
    sock.onmessage = (ev) => {
      if (!mine()) return;
      this._touch();
      let f;
      try { f = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data)); } catch (_) {
        this._emit('error', new Error('a frame that is not JSON'));
        return;
      }
      this._frame(sock, f);
    };
    sock.onerror = (ev) => {
      if (!mine()) return;
      const msg = (ev && (ev.message || (ev.error && ev.error.message))) || 'WebSocket error';
      const m = /Unexpected server response: (\d+)/.exec(msg);
      if (m) refused = Number(m[1]);
      this._emit('error', new Error(msg));
    };
    sock.onclose = (ev) => {
      if (!mine()) return;
      this.socket = null;
      clearTimeout(this._staleTimer);
      this._failOpens();
      const code = ev ? ev.code : 1006;
      const reason = (ev && ev.reason) || '';
      if (!this._want) return;
      if (code === CLOSE_POLICY || refused === 401 || refused === 403) {
        const why = refused ? 'upgrade refused with HTTP ' + refused : 'closed by the server (' + code + ' ' + reason + ')';
        this._fatal(new TuisongError(refused || code, refused === 401 ? 'unauthorized' : 'policy', why), code, reason);
        return;
      }
      this._retry(code, reason);
    };
  }

  /** Any frame counts as life; a socket silent for `staleAfterMs` is dropped. */
  _touch() {
    clearTimeout(this._staleTimer);
    if (!this.staleAfterMs) return;
    const sock = this.socket;
    this._staleTimer = setTimeout(() => {
      if (this.socket === sock && sock) {
        this._emit('error', new Error('no frame for ' + this.staleAfterMs + ' ms'));
        this._drop(sock);
      }
    }, this.staleAfterMs);
  }

  /** Abandons a socket as if the network failed, and schedules a reconnect. */
  _drop(sock) {
    if (this.socket !== sock) return;
    this.socket = null;
    clearTimeout(this._staleTimer);
    this._failOpens();
    try {
      if (typeof sock.terminate === 'function') sock.terminate(); else sock.close();
    } catch (_) { /* already gone */ }
    if (this._want) this._retry(1006, 'dropped');
  }

  _failOpens() {
    for (const msgid of [...this._openWaiters.keys()]) this._settleOpen(msgid, null, new Error('socket closed'));
  }

  _retry(code, reason) {
    const delay = backoffDelay(this._attempt, this.backoff, this.random);
    this._attempt++;
    this._setState('offline', { code, reason, delay });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delay);
  }

  _fatal(err, code, reason) {
    this._want = false;
    clearTimeout(this._timer);
    this._emit('error', err);
    this._setState('failed', { code, reason, error: err });
    this._settleWelcome(null, err);
  }

  /**
   * Deliberate close: no reconnect. The cursor stays in storage for the next connect().
   */
  close() {
    const was = this._want || this.socket;
    this._want = false;
    this._gen++;
    clearTimeout(this._timer);
    clearTimeout(this._staleTimer);
    const s = this.socket;
    this.socket = null;
    this._failOpens();
    if (s) {
      try { s.close(1000, 'bye'); } catch (_) { /* closing already */ }
    }
    this._settleWelcome(null, new Error('closed'));
    if (was || this._state !== 'closed') this._setState('closed');
  }

  /** Drops the current socket as a network failure would (tests, "airplane mode"). */
  reconnect() {
    if (this.socket) this._drop(this.socket);
  }

  _frame(sock, f) {
    switch (f && f.type) {
      case 'welcome':
        this._attempt = 0;
        this.userId = f.user_id;
        this._lastWelcome = f;
        this._setState('online');
        this._emit('welcome', f);
        this._settleWelcome(f, null);
        break;
      case 'message':
        this._message(f);
        break;
      case 'recall':
        this._recall(f);
        break;
      case 'opened':
        this._emit('opened', f);
        this._settleOpen(f.msgid, { msgid: f.msgid, appid: f.appid, page: f.page }, null);
        break;
      case 'ping':
        if (sock.readyState === 1) sock.send(JSON.stringify({ type: 'pong' }));
        break;
      case 'error': {
        const e = new Error(f.message || 'device session error');
        e.frame = f;
        this._emit('error', e);
        break;
      }
      default:
        break; // a frame this SDK does not know: ignore it
    }
  }

  /** Whether seq was seen already; advances and saves the cursor otherwise. */
  _advance(seq) {
    if (typeof seq === 'number' && this._cursor !== null && seq <= this._cursor) return false;
    if (typeof seq === 'number') this._cursor = seq;
    return true;
  }

  _message(f) {
    const fresh = !this._seen.has(f.msgid);
    if (!this._advance(f.seq) || !fresh) return; // a repeat after a reconnect
    this._remember(f.msgid);
    this.messages.set(f.msgid, f);
    let acked = false;
    const ack = () => {
      if (acked) return Promise.resolve(true);
      acked = true;
      return this.ack(f.msgid);
    };
    this._emit('message', { ...f, ack });
    if (this.autoAck) ack().catch((e) => this._emit('error', e));
    this._saveCursor();
  }

  _recall(f) {
    if (!this._advance(f.seq)) return;
    this._remember(f.msgid);
    const card = this.messages.get(f.msgid) || null;
    this.messages.delete(f.msgid);
    this._emit('recall', { ...f, card });
    this._saveCursor();
  }

  _remember(msgid) {
    this._seen.add(msgid);
    if (this._seen.size > 2000) this._seen.delete(this._seen.values().next().value);
  }
}

/** `new TuisongDevice(opts)`. @param {import('../index').DeviceOptions} [opts] */
export function createDevice(opts) {
  return new TuisongDevice(opts);
}
