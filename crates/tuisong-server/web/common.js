// Shared by the console and the simulator (an ES module both import): a tiny DOM
// builder, a fetch wrapper for the public JSON APIs, and formatting. No framework: every
// view is rebuilt from data with h(), which never parses HTML, so text from the server
// cannot become markup.

/** h('div.card', {dataset:{test:'x'}, onclick: f}, child, 'text', [more]) */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElementNS(
    SVG_TAGS.has(tag) ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml',
    tag || 'div');
  if (classes.length) el.setAttribute('class', classes.join(' '));
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'test') el.setAttribute('data-test', v);
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.setAttribute('data-' + dk, dv);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.setAttribute('class', [el.getAttribute('class'), v].filter(Boolean).join(' '));
      else if (k === 'value' && 'value' in el) el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, v);
    }
  }
  append(el, children);
  return el;
}
const SVG_TAGS = new Set(['svg', 'path', 'line', 'rect', 'circle', 'polyline', 'polygon', 'text', 'g', 'title']);

export function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function mount(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/**
 * Calls a JSON API. Resolves to {ok, status, data}; never throws for HTTP errors.
 * opts: {bearer, body, query, headers}. `data` is the parsed body or null.
 */
export async function api(method, path, opts = {}) {
  let url = path;
  if (opts.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts.query)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, v);
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const headers = {};
  if (opts.bearer) headers.Authorization = 'Bearer ' + opts.bearer;
  Object.assign(headers, opts.headers || {});
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(url, { method, headers, body, cache: 'no-store' });
  } catch (e) {
    return { ok: false, status: 0, data: { error: { code: 'network', message: String(e) } } };
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = { text }; }
  }
  return { ok: res.ok, status: res.status, data };
}

/** The message of a native-dialect error, or of a WeChat errcode answer. */
export function errorText(r) {
  const d = r && r.data;
  if (d && d.error) return d.error.message + ' (' + d.error.code + ')';
  if (d && typeof d.errcode === 'number') return d.errmsg.replace(/ rid: .*$/, '') + ' (' + d.errcode + ')';
  return 'HTTP ' + (r ? r.status : '?');
}

export function pad(n) { return String(n).padStart(2, '0'); }

/** Local date and time, "2026-11-24 16:45:03". */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
    pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}

/** "16:45" today, "11-24 16:45" otherwise. */
export function fmtShort(ms) {
  const d = new Date(ms);
  const now = new Date();
  const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
  if (d.toDateString() === now.toDateString()) return hm;
  return pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + hm;
}

export function fmtPct(x) {
  if (x === null || x === undefined) return '—';
  return (Math.round(x * 1000) / 10) + '%';
}

/**
 * The card rows of a private template, from gettemplate's `content` and `example`
 * ("name:{{key.DATA}}" and "name:example" lines, in the same order).
 */
export function templateRows(t) {
  const c = (t.content || '').split('\n').filter(Boolean);
  const e = (t.example || '').split('\n').filter(Boolean);
  return c.map((line, i) => {
    const idx = line.indexOf(':');
    const name = line.slice(0, idx);
    const m = /\{\{([a-z_]+\d+)\.DATA\}\}/.exec(line);
    const ex = e[i] || '';
    return { name, key: m ? m[1] : '', value: ex.slice(ex.indexOf(':') + 1) };
  });
}

/**
 * A subscription-message card as WeChat shows it: app line, title, keyword rows and
 * "进入小程序查看". opts: {app, time, footer, test, onclick, menu}.
 */
export function card(title, rows, opts = {}) {
  return h('div.wx-card', { test: opts.test || 'card', data: opts.data, onclick: opts.onclick },
    h('div.wx-card-head', null,
      h('span.wx-app-dot', null, (opts.app || '小').slice(0, 1)),
      h('span.wx-card-app', null, opts.app || '小程序'),
      opts.time ? h('span.wx-card-time', null, opts.time) : null,
      opts.menu || null),
    h('div.wx-card-title', { test: 'card-title' }, title),
    h('div.wx-card-rows', null, rows.map((r) =>
      h('div.wx-card-row', { test: 'card-row' },
        h('span.wx-card-name', null, r.name),
        h('span.wx-card-value', null, r.value)))),
    opts.footer === false ? null :
      h('div.wx-card-foot', null, h('span', null, opts.footer || '进入小程序查看'), h('span.chev', null, '›')));
}
