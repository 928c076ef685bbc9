// The phone simulator: the part of WeChat that tuisong emulates, drawn as a phone. It
// speaks only the device API (docs/PROTOCOL.md): users, wx.login, the consent sheet
// (wx.requestSubscribeMessage), the settings page, and the WebSocket that brings
// 服务通知 cards.
//
// Storage: the list of simulated users (nickname + device token) is in localStorage,
// shared by every tab; the user this tab plays is in sessionStorage, so several tabs can
// be several phones. Each user's cards and cursor are in localStorage, so a reload
// reconnects with the cursor and shows what it had, exactly once per msgid.
//
// The device protocol itself (the HTTP calls, the /client/v1/ws session, cursor, resume,
// backoff, pings, acks) is the JS device SDK, sdk/js (@tuisong/device), served at
// /web/sdk/index.js; this page only draws.
import * as TS from './common.js';
import { createDevice } from './sdk/index.js';

(() => {
  const { h, mount, errorText, fmtShort } = TS;
  const screenEl = document.getElementById('screen');
  const overlayEl = document.getElementById('overlay');
  const wsEl = document.getElementById('sb-ws');

  // ------------------------------------------------------------------ storage
  const USERS_KEY = 'tuisong.sim.users';
  const loadUsers = () => { try { return JSON.parse(localStorage.getItem(USERS_KEY)) || []; } catch (_) { return []; } };
  const saveUsers = (list) => localStorage.setItem(USERS_KEY, JSON.stringify(list));
  let device = sessionStorage.getItem('tuisong.sim.device');
  if (!device) {
    device = 'simulator-' + Math.random().toString(16).slice(2, 6);
    sessionStorage.setItem('tuisong.sim.device', device);
  }

  let user = null; // {user_id, nickname, device_token}
  let inbox = { cursor: 0, cards: [] };
  const inboxKey = () => 'tuisong.sim.inbox.' + user.user_id;
  const loadInbox = () => {
    try { inbox = JSON.parse(localStorage.getItem(inboxKey())) || { cursor: 0, cards: [] }; } catch (_) { inbox = { cursor: 0, cards: [] }; }
  };
  const saveInbox = () => {
    if (inbox.cards.length > 300) inbox.cards = inbox.cards.slice(-300);
    localStorage.setItem(inboxKey(), JSON.stringify(inbox));
  };

  let apps = []; // [{appid, name}]
  const appName = (appid) => (apps.find((a) => a.appid === appid) || {}).name || appid;

  // ------------------------------------------------------------------ device API
  // The SDK device of the user this tab plays (null on the users screen).
  let sdk = null;
  /** An SDK call as common.js's api() answers: {ok, status, data}, never a throw. */
  const wrap = (p) => p.then(
    (data) => ({ ok: true, status: 200, data }),
    (e) => ({ ok: false, status: e.status || 0, data: e.code ? { error: { code: e.code, message: e.message } } : null }));
  /** The SDK keeps its cursor in this user's inbox record (localStorage). */
  const cursorStore = {
    getItem: () => String(inbox.cursor || 0),
    setItem: (_key, value) => {
      const n = Number(value);
      if (n > inbox.cursor) { inbox.cursor = n; saveInbox(); }
    },
  };
  const newDevice = (token) => createDevice({
    token, device, storage: cursorStore, autoAck: false, backoff: { baseMs: 500, maxMs: 5000 },
  });

  // ------------------------------------------------------------------ screens
  let stack = [];
  function go(name, args, replace) {
    if (replace) stack.pop();
    stack.push({ name, args: args || {} });
    render();
  }
  function back() {
    if (stack.length > 1) stack.pop();
    render();
  }
  function render() {
    const top = stack[stack.length - 1];
    screenEl.dataset.screen = top.name;
    SCREENS[top.name](top.args);
  }

  function navbar(title, opts = {}) {
    return h('div.navbar', { class: opts.mini ? 'mini' : '' },
      stack.length > 1 && !opts.noBack ? h('button.nav-back', { test: 'back', onclick: back, 'aria-label': '返回' }, '‹') : h('span.nav-back'),
      h('div.nav-title', { test: 'nav-title' }, title),
      opts.mini ? h('div.capsule', null,
        h('button', { test: 'capsule-menu', onclick: opts.onMenu, 'aria-label': '更多' }, '•••'),
        h('i'),
        h('button', { test: 'capsule-close', onclick: () => { stack = stack.slice(0, 1); render(); }, 'aria-label': '关闭' }, '◎')) :
        h('span.nav-right', null, opts.right || null));
  }

  function toast(text, icon) {
    const el = h('div.sim-toast', { test: 'sim-toast' }, icon ? h('div.sim-toast-icon', null, icon) : null, h('div', null, text));
    overlayEl.appendChild(el);
    setTimeout(() => el.remove(), 2200);
  }

  function dialog(title, text, test) {
    return new Promise((resolve) => {
      const box = h('div.mask', { test: test || 'dialog' },
        h('div.dialog', null,
          h('div.dialog-title', null, title),
          h('div.dialog-text', { test: 'dialog-text' }, text),
          h('button.dialog-btn', { test: 'dialog-ok', onclick: () => { box.remove(); resolve(); } }, '确定')));
      overlayEl.appendChild(box);
    });
  }

  function toggle(on, attrs, onchange) {
    const el = h('button.switch', { ...attrs, role: 'switch', 'aria-checked': on ? 'true' : 'false', data: { on: on ? 'true' : 'false' } });
    el.addEventListener('click', () => {
      const now = el.dataset.on !== 'true';
      el.dataset.on = String(now);
      el.setAttribute('aria-checked', String(now));
      if (onchange) onchange(now, el);
    });
    return el;
  }

  // Users: pick or create.
  function screenUsers() {
    const list = loadUsers();
    const name = h('input', { test: 'new-user-name', placeholder: '昵称，如 小明', maxlength: 32 });
    const create = async (e) => {
      e.preventDefault();
      const nickname = name.value.trim();
      if (!nickname) return;
      const r = await wrap(newDevice(null).createUser(nickname));
      if (!r.ok) return toast(errorText(r));
      const u = { user_id: r.data.user_id, nickname: r.data.nickname, device_token: r.data.device_token };
      saveUsers([...loadUsers(), u]);
      useUser(u);
    };
    // A user made elsewhere (curl, `tuisong device`): sign in with its device token.
    const tokenInput = h('input', { test: 'existing-token', placeholder: 'dt_…', autocomplete: 'off' });
    const signIn = async (e) => {
      e.preventDefault();
      const token = tokenInput.value.trim();
      if (!token) return;
      const r = await wrap(newDevice(token).me());
      if (!r.ok) return toast(r.status === 401 ? '设备令牌无效' : errorText(r));
      const u = { user_id: r.data.user_id, nickname: r.data.nickname, device_token: token };
      saveUsers([...loadUsers().filter((x) => x.user_id !== u.user_id), u]);
      useUser(u);
    };
    mount(screenEl,
      navbar('选择用户', { noBack: true }),
      h('div.content.users', null,
        h('div.users-hero', null, h('img', { src: '/web/icon.svg', alt: '' }), h('div', null, '模拟一位微信用户'), h('small', null, '每个标签页可以扮演不同的用户')),
        list.length ? h('div.group-title', null, '已有用户') : null,
        list.length ? h('div.cells', null, list.map((u) => h('button.cell', { test: 'user-item', data: { user: u.user_id }, onclick: () => useUser(u) },
          h('span.avatar', null, u.nickname.slice(0, 1)),
          h('span.cell-main', null, h('span.cell-title', null, u.nickname), h('span.cell-sub', null, u.user_id)),
          h('span.chev', null, '›')))) : null,
        h('div.group-title', null, '新建用户'),
        h('form.cells.form', { onsubmit: create },
          h('div.cell', null, name),
          h('button.wx-btn.primary', { type: 'submit', test: 'create-user' }, '创建并登录')),
        h('div.group-title', null, '用设备令牌登录'),
        h('form.cells.form', { onsubmit: signIn },
          h('div.cell', null, tokenInput),
          h('button.wx-btn', { type: 'submit', test: 'sign-in-token' }, '登录'))));
  }

  async function useUser(u) {
    disconnect();
    user = u;
    sdk = newDevice(u.device_token);
    sessionStorage.setItem('tuisong.sim.active', u.user_id);
    loadInbox();
    const r = await wrap(sdk.apps());
    if (r.status === 401) {
      // The server no longer knows this user (a new data dir): forget it.
      saveUsers(loadUsers().filter((x) => x.user_id !== u.user_id));
      sessionStorage.removeItem('tuisong.sim.active');
      user = null;
      sdk = null;
      stack = [{ name: 'users', args: {} }];
      render();
      return toast('该用户已不存在');
    }
    apps = r.ok ? r.data.apps : [];
    stack = [{ name: 'home', args: {} }];
    render();
    connect();
  }

  // Home: the chat list, with 服务通知 on top and the mini programs below.
  function screenHome() {
    const unread = inbox.cards.filter((c) => !c.read).length;
    const last = inbox.cards[inbox.cards.length - 1];
    mount(screenEl,
      navbar('微信', { noBack: true }),
      h('div.content', null,
        h('div.cells.chats', null,
          h('button.cell.chat', { test: 'open-notifications', onclick: () => go('notifications') },
            h('span.chat-icon.notify', null, h('img', { src: '/web/icon.svg', alt: '' })),
            h('span.cell-main', null,
              h('span.cell-title', null, '服务通知'),
              h('span.cell-sub', { test: 'last-notification' }, last ? (last.recalled ? '此消息已撤回' : last.title) : '暂无通知')),
            h('span.chat-side', null,
              last ? h('span.chat-time', null, fmtShort(last.sent_at || Date.now())) : null,
              unread ? h('span.unread', { test: 'unread-badge' }, String(unread)) : null))),
        h('div.group-title', null, '小程序'),
        apps.length === 0 ? h('div.hint', null, '服务器上还没有小程序') :
          h('div.mini-grid', null, apps.map((a) => h('button.mini-app', { test: 'mini-app', data: { appid: a.appid }, onclick: () => go('app', { appid: a.appid }) },
            h('span.mini-icon', null, a.name.slice(0, 1)), h('span.mini-name', null, a.name))))),
      tabbar('home'));
  }

  function tabbar(active) {
    return h('div.tabbar', null,
      h('button', { class: active === 'home' ? 'active' : '', test: 'tab-home', onclick: () => { stack = [{ name: 'home', args: {} }]; render(); } }, h('span.tab-ico', null, '💬'), '微信'),
      h('button', { class: active === 'me' ? 'active' : '', test: 'tab-me', onclick: () => { stack = [{ name: 'me', args: {} }]; render(); } }, h('span.tab-ico', null, '👤'), '我'));
  }

  function screenMe() {
    mount(screenEl,
      navbar('我', { noBack: true }),
      h('div.content', null,
        h('div.me-card', null, h('span.avatar.big', null, user.nickname.slice(0, 1)),
          h('div', null, h('div.me-name', { test: 'me-name' }, user.nickname), h('div.cell-sub', null, '用户 ' + user.user_id), h('div.cell-sub', null, '设备 ' + device))),
        h('div.cells', null,
          h('button.cell', { test: 'switch-user', onclick: () => { disconnect(); user = null; sdk = null; sessionStorage.removeItem('tuisong.sim.active'); stack = [{ name: 'users', args: {} }]; render(); } },
            h('span.cell-main', null, h('span.cell-title', null, '切换用户')), h('span.chev', null, '›')))),
      tabbar('me'));
  }

  // A mini program's demo page: wx.login and subscribe buttons for its templates.
  async function screenApp({ appid }) {
    const r = await wrap(sdk.templates(appid));
    if (!r.ok) { toast(errorText(r)); return back(); }
    const info = r.data;
    const code = h('div.code-box', { test: 'login-code', hidden: true });
    const result = h('pre.result', { test: 'subscribe-result', hidden: true });
    const login = async () => {
      const l = await wrap(sdk.login(appid));
      code.hidden = false;
      code.textContent = l.ok ? l.data.code : errorText(l);
    };
    const once = info.templates.filter((x) => x.type === 2).slice(0, 3);
    const showResult = (res) => { result.hidden = false; result.textContent = JSON.stringify(res, null, 1); };
    mount(screenEl,
      navbar(info.name, { mini: true, onMenu: () => go('settings', { appid }) }),
      h('div.content.mp', { test: 'mini-page' },
        h('div.mp-hero', null, h('span.mini-icon.big', null, info.name.slice(0, 1)),
          h('div', null, h('div.mp-name', null, info.name), h('div.cell-sub', null, 'pages/index/index'))),
        h('div.mp-section', null,
          h('div.mp-title', null, 'wx.login'),
          h('p.mp-hint', null, '得到 code，交给小程序后端换取 openid（/sns/jscode2session）。'),
          h('button.wx-btn', { test: 'wx-login', onclick: login }, '获取登录 code'),
          code),
        h('div.mp-section', null,
          h('div.mp-title', null, '订阅消息'),
          h('p.mp-hint', null, 'wx.requestSubscribeMessage：每次同意，一次性模板可多发一条。'),
          info.templates.length === 0 ? h('div.hint', null, '这个小程序还没有模板') : null,
          info.templates.map((tp) => h('button.wx-btn.primary.sub-btn', { test: 'subscribe', data: { id: tp.priTmplId, title: tp.title }, onclick: () => requestSubscribe(info, [tp], showResult) },
            '订阅「' + tp.title + '」', h('span.tag', null, tp.type === 3 ? '长期' : '一次性'))),
          once.length > 1 ? h('button.wx-btn.sub-btn', { test: 'subscribe-all', onclick: () => requestSubscribe(info, once, showResult) }, '一次订阅 ' + once.length + ' 个一次性模板') : null,
          result),
        h('div.cells', null,
          h('button.cell', { test: 'open-settings', onclick: () => go('settings', { appid }) },
            h('span.cell-main', null, h('span.cell-title', null, '设置 · 订阅消息')), h('span.chev', null, '›')))));
  }

  const FAIL_TEXT = {
    10001: '参数 tmplIds 为空',
    10004: '模板 id 类型错误',
    20001: '模板 id 不属于这个小程序',
    20002: '一次性和长期模板不能同时订阅',
    20003: '一次最多订阅 3 个模板',
    20004: '你已关闭该小程序的订阅消息总开关，可在「设置 · 订阅消息」中打开',
  };

  /** wx.requestSubscribeMessage: the sheet for what is not kept, then the call. */
  async function requestSubscribe(info, tmpls, done) {
    const ids = tmpls.map((x) => x.priTmplId);
    const s = await wrap(sdk.getSettings(info.appid));
    const kept = (s.ok && s.data.itemSettings) || {};
    const ask = s.ok && s.data.mainSwitch ? tmpls.filter((x) => !kept[x.priTmplId]) : [];
    const call = async (decisions, keep) => {
      const r = await wrap(sdk.requestSubscribeMessage({ appid: info.appid, tmplIds: ids, decisions, keep }));
      if (!r.ok) { toast(errorText(r)); return; }
      done(r.data);
      if (r.data.errCode) {
        await dialog('订阅失败', (FAIL_TEXT[r.data.errCode] || r.data.errMsg) + '（errCode ' + r.data.errCode + '）', 'fail-dialog');
      } else {
        const accepted = ids.filter((id) => r.data[id] === 'accept').length;
        toast(accepted ? '已订阅' : '已拒绝', accepted ? '✓' : '✕');
      }
    };
    if (ask.length === 0) return call({}, false); // main switch off, or every choice kept
    const switches = ask.map((x) => ({ id: x.priTmplId, on: true }));
    const keep = h('input', { type: 'checkbox', test: 'consent-keep', id: 'consent-keep' });
    const close = () => sheet.remove();
    const sheet = h('div.mask.bottom', { test: 'consent-mask' },
      h('div.sheet', { test: 'consent-sheet' },
        h('div.sheet-app', null, h('span.mini-icon.small', null, info.name.slice(0, 1)), h('span', null, info.name)),
        h('div.sheet-title', null, '发送以下消息'),
        h('div.sheet-items', null, ask.map((x, i) => h('div.sheet-item', { test: 'consent-item', data: { id: x.priTmplId } },
          h('span.sheet-item-title', null, x.title),
          toggle(true, { test: 'consent-switch' }, (on) => { switches[i].on = on; })))),
        h('label.sheet-keep', { for: 'consent-keep' }, keep, h('span', null, '总是保持以上选择，不再询问')),
        h('div.sheet-btns', null,
          h('button.wx-btn', {
            test: 'consent-cancel',
            onclick: () => { close(); call(Object.fromEntries(switches.map((x) => [x.id, 'reject'])), keep.checked); },
          }, '取消'),
          h('button.wx-btn.primary', {
            test: 'consent-allow',
            onclick: () => { close(); call(Object.fromEntries(switches.map((x) => [x.id, x.on ? 'accept' : 'reject'])), keep.checked); },
          }, '允许'))));
    overlayEl.appendChild(sheet);
  }

  // 服务通知: the cards, oldest first, newest at the bottom.
  function screenNotifications() {
    let changed = false;
    for (const c of inbox.cards) if (!c.read) { c.read = true; changed = true; }
    if (changed) saveInbox();
    const list = h('div.notify-list', { test: 'notifications' },
      inbox.cards.length === 0 ? h('div.hint.center', { test: 'no-notifications' }, '暂无服务通知') : null,
      inbox.cards.map(cardEl));
    mount(screenEl, navbar('服务通知'), h('div.content.notify', { id: 'notify-scroll' }, list));
    const sc = document.getElementById('notify-scroll');
    sc.scrollTop = sc.scrollHeight;
  }

  function cardEl(c) {
    if (c.recalled) {
      return h('div.notify-item', { test: 'notification', data: { msgid: c.msgid, state: 'recalled' } },
        h('div.notify-time', null, fmtShort(c.sent_at || c.recalled_at || Date.now())),
        h('div.recalled', { test: 'recalled' }, '此消息已撤回'));
    }
    const menu = h('button.card-menu', {
      test: 'card-menu', 'aria-label': '更多',
      onclick: (e) => { e.stopPropagation(); cardMenu(c); },
    }, '···');
    return h('div.notify-item', { test: 'notification', data: { msgid: c.msgid, state: 'shown' } },
      h('div.notify-time', null, fmtShort(c.sent_at)),
      TS.card(c.title, c.rows, {
        app: appName(c.appid), test: 'notification-card', menu,
        footer: c.page ? '进入小程序查看' : '查看详情',
        onclick: () => openCard(c),
      }),
      c.urgent ? h('div.urgent-tag', null, '紧急') : null);
  }

  function cardMenu(c) {
    const box = h('div.mask.bottom', { test: 'card-menu-sheet', onclick: (e) => { if (e.target === box) box.remove(); } },
      h('div.action-sheet', null,
        h('button', {
          test: 'card-unsubscribe',
          onclick: async () => {
            box.remove();
            const r = await wrap(sdk.unsubscribe(c.msgid));
            toast(r.ok ? '已不再接收此类消息' : errorText(r));
          },
        }, '不再接收此类消息'),
        h('button.cancel', { onclick: () => box.remove() }, '取消')));
    overlayEl.appendChild(box);
  }

  // The open frame when online (answered with opened), else its HTTP twin: the SDK picks.
  function openCard(c) {
    const mine = sdk;
    wrap(mine.open(c.msgid)).then((r) => {
      if (sdk !== mine) return;
      if (r.ok) showPage(r.data.msgid, r.data.appid, r.data.page); else toast(errorText(r));
    });
  }

  function showPage(msgid, appid, page) {
    go('page', { msgid, appid, page });
  }

  // The mini program page a card opens.
  function screenPage({ msgid, appid, page }) {
    const path = page || 'pages/index/index';
    const [p, q] = path.split('?');
    const params = q ? [...new URLSearchParams(q).entries()] : [];
    mount(screenEl,
      navbar(appName(appid), { mini: true, onMenu: () => go('settings', { appid }) }),
      h('div.content.mp', { test: 'mp-page' },
        h('div.mp-hero', null, h('span.mini-icon.big', null, appName(appid).slice(0, 1)),
          h('div', null, h('div.mp-name', null, '小程序页面'), h('div.cell-sub', null, '由服务通知 #' + msgid + ' 打开'))),
        h('div.mp-section', null,
          h('div.mp-title', null, '页面路径'),
          h('div.code-box', { test: 'page-path' }, path)),
        params.length ? h('div.mp-section', null,
          h('div.mp-title', null, 'onLoad(options)'),
          h('div.kvs', null, params.map(([k, v]) => h('div.kv-row', null, h('span.k', null, k), h('span.v', null, v))))) : null,
        h('div.mp-section', null, h('div.mp-title', null, '路由'), h('div.mp-hint.mono', null, p))));
  }

  // Settings: main switch, per-template switches, quiet hours.
  async function screenSettings({ appid }) {
    const [s, tp] = await Promise.all([wrap(sdk.getSettings(appid)), wrap(sdk.templates(appid))]);
    if (!s.ok || !tp.ok) { toast(errorText(s.ok ? tp : s)); return back(); }
    const set = s.data;
    const put = async (body, okText) => {
      const r = await wrap(sdk.updateSettings({ appid, ...body }));
      if (!r.ok) { toast(errorText(r)); render(); return; }
      if (okText) toast(okText);
    };
    const items = h('div.cells', null, tp.data.templates.map((x) => {
      const kept = set.itemSettings[x.priTmplId];
      return h('div.cell', { test: 'item-setting', data: { id: x.priTmplId } },
        h('span.cell-main', null, h('span.cell-title', null, x.title),
          h('span.cell-sub', null, kept ? (kept === 'accept' ? '总是接收' : '不再接收') : '每次询问')),
        toggle(kept !== 'reject', { test: 'item-switch' }, (on) => put({ itemSettings: { [x.priTmplId]: on ? 'accept' : 'reject' } })));
    }));
    const itemsBox = h('div', { test: 'item-settings', hidden: !set.mainSwitch }, h('div.group-title', null, '订阅消息'), items);
    const q = set.quietHours;
    const qStart = h('input', { type: 'time', test: 'quiet-start', value: q ? q.start : '22:00' });
    const qEnd = h('input', { type: 'time', test: 'quiet-end', value: q ? q.end : '08:00' });
    const qBox = h('div.quiet', { hidden: !q }, h('div.row', null, qStart, h('span', null, '至'), qEnd,
      h('button.wx-btn.mini', { test: 'quiet-save', onclick: () => put({ quietHours: { start: qStart.value, end: qEnd.value, utc_offset: offset() } }, '已保存') }, '保存')));
    mount(screenEl,
      navbar('设置'),
      h('div.content', null,
        h('div.group-title', null, appName(appid) + ' · 订阅消息'),
        h('div.cells', null, h('div.cell', null,
          h('span.cell-main', null, h('span.cell-title', null, '接收订阅消息')),
          toggle(set.mainSwitch, { test: 'main-switch' }, (on) => { itemsBox.hidden = !on; put({ mainSwitch: on }); }))),
        h('div.group-hint', null, '关闭后，这个小程序将不能再给你发送订阅消息。'),
        itemsBox,
        h('div.group-title', null, '免打扰'),
        h('div.cells', null, h('div.cell', null,
          h('span.cell-main', null, h('span.cell-title', null, '免打扰时段')),
          toggle(!!q, { test: 'quiet-on' }, (on) => { qBox.hidden = !on; if (!on) put({ quietHours: null }, '已关闭'); })),
        qBox),
        h('div.group-hint', null, '时段内到达的非紧急消息会在结束时送达。')));
  }

  /** This browser's UTC offset as "+08:00". */
  function offset() {
    const m = -new Date().getTimezoneOffset();
    const sign = m >= 0 ? '+' : '-';
    const a = Math.abs(m);
    return sign + TS.pad(Math.floor(a / 60)) + ':' + TS.pad(a % 60);
  }

  const SCREENS = {
    users: screenUsers, home: screenHome, me: screenMe, app: screenApp,
    notifications: screenNotifications, page: screenPage, settings: screenSettings,
  };

  // ------------------------------------------------------------------ WebSocket
  // The SDK's session; this page turns its events into cards.
  function setWs(state) {
    wsEl.dataset.state = state;
    wsEl.textContent = state;
  }

  function disconnect() {
    if (sdk) sdk.close();
    setWs('offline');
  }

  function connect() {
    if (!user || !sdk) return;
    const mine = sdk;
    const live = (fn) => (v) => { if (sdk === mine) fn(v); };
    mine.on('state', live((s) => setWs(s.state === 'online' || s.state === 'connecting' ? s.state : 'offline')));
    mine.on('message', live(onMessage));
    mine.on('recall', live(onRecall));
    mine.on('error', live((e) => console.warn('device session:', e.message)));
    mine.connect();
  }

  function onMessage(f) {
    const known = inbox.cards.find((c) => c.msgid === f.msgid);
    if (!known) {
      inbox.cards.push({
        msgid: f.msgid, seq: f.seq, appid: f.appid, template_id: f.template_id, title: f.title,
        rows: f.rows, page: f.page, urgent: f.urgent, sent_at: f.sent_at, read: onScreen('notifications'),
      });
    }
    inbox.cursor = Math.max(inbox.cursor, f.seq);
    saveInbox();
    if (!known || !known.recalled) f.ack().catch((e) => console.warn('ack:', e.message));
    if (!known) refreshAfterFrame();
  }

  function onRecall(f) {
    const c = inbox.cards.find((x) => x.msgid === f.msgid);
    if (c) { c.recalled = true; c.rows = []; } else inbox.cards.push({ msgid: f.msgid, seq: f.seq, recalled: true, recalled_at: Date.now(), read: onScreen('notifications') });
    inbox.cursor = Math.max(inbox.cursor, f.seq);
    saveInbox();
    refreshAfterFrame();
  }

  const onScreen = (name) => stack.length > 0 && stack[stack.length - 1].name === name;
  function refreshAfterFrame() {
    if (onScreen('notifications') || onScreen('home')) render();
  }

  // ------------------------------------------------------------------ start
  function clock() {
    const d = new Date();
    document.getElementById('sb-time').textContent = d.getHours() + ':' + TS.pad(d.getMinutes());
  }
  clock();
  setInterval(clock, 15000);

  window.addEventListener('storage', (e) => {
    // Another tab playing the same user stored new cards: show them here too.
    if (user && e.key === inboxKey() && e.newValue) {
      try {
        const other = JSON.parse(e.newValue);
        for (const c of other.cards) {
          const mine = inbox.cards.find((x) => x.msgid === c.msgid);
          if (!mine) inbox.cards.push(c);
          else if (c.recalled && !mine.recalled) { mine.recalled = true; mine.rows = []; }
        }
        inbox.cursor = Math.max(inbox.cursor, other.cursor || 0);
      } catch (_) { /* a torn write: the next event brings it */ }
      inbox.cards.sort((a, b) => (a.seq || 0) - (b.seq || 0));
      refreshAfterFrame();
    }
  });

  const activeId = sessionStorage.getItem('tuisong.sim.active');
  const remembered = loadUsers().find((u) => u.user_id === activeId);
  stack = [{ name: 'users', args: {} }];
  if (remembered) useUser(remembered); else render();
})();
