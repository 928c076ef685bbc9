// The operator's console: a client of the public APIs only. The admin token (kept in
// this tab's sessionStorage) calls /admin; for everything about one app the console
// asks /admin/apps/{appid}/console-token for an access token of its own kind and then
// calls the WeChat dialect (/wxaapi) and /v1 exactly as an app server would.
'use strict';

(() => {
  const { h, mount, api, errorText, fmtTime, fmtPct, templateRows, card } = TS;

  // ------------------------------------------------------------------ i18n
  const L = {
    brand: ['tuisong 推送', 'tuisong'],
    console: ['控制台', 'Console'],
    signInTitle: ['登录控制台', 'Sign in to the console'],
    signInHint: ['输入管理员令牌（在 tuisong-data/admin-token 中，或 TUISONG_ADMIN_TOKEN）。令牌只保存在此标签页。',
      'Enter the admin token (in tuisong-data/admin-token, or TUISONG_ADMIN_TOKEN). It is kept in this tab only.'],
    adminToken: ['管理员令牌', 'Admin token'],
    signIn: ['登录', 'Sign in'],
    signOut: ['退出', 'Sign out'],
    badToken: ['令牌不正确', 'That token is not right'],
    sessionEnded: ['管理员令牌已失效，请重新登录', 'The admin token was refused; sign in again'],
    navApps: ['应用', 'Apps'],
    navTemplates: ['模板', 'Templates'],
    navUsers: ['用户与授权', 'Users & consent'],
    navMessages: ['消息', 'Messages'],
    navAnalytics: ['数据分析', 'Analytics'],
    navPolicy: ['推送策略', 'Policy'],
    simulator: ['手机模拟器', 'Phone simulator'],
    currentApp: ['当前应用', 'App'],
    noApps: ['还没有应用', 'No apps yet'],
    apps: ['应用列表', 'Apps'],
    name: ['名称', 'Name'],
    appid: ['AppID', 'AppID'],
    originalId: ['原始 ID', 'Original ID'],
    created: ['创建时间', 'Created'],
    createApp: ['创建应用', 'Create app'],
    newAppName: ['新应用名称', 'New app name'],
    created_ok: ['已创建。请保存 AppSecret，它只在请求时显示。', 'Created. Keep the AppSecret; it is shown only on request.'],
    credentials: ['开发凭据', 'Credentials'],
    secret: ['AppSecret', 'AppSecret'],
    reveal: ['显示', 'Reveal'],
    hide: ['隐藏', 'Hide'],
    resetSecret: ['重置 AppSecret', 'Reset secret'],
    confirmReset: ['确认重置？旧的密钥立即失效', 'Confirm: the old secret stops working at once'],
    confirm: ['确认', 'Confirm'],
    cancel: ['取消', 'Cancel'],
    secretReset: ['AppSecret 已重置', 'Secret reset'],
    back: ['返回', 'Back'],
    pushConfig: ['消息推送配置', 'Message push'],
    pushHint: ['保存时 tuisong 会向 URL 发起微信的 GET 握手（echostr），成功才保存。',
      'Saving runs WeChat\'s GET handshake (echostr) against the URL; the config is kept only if it succeeds.'],
    url: ['服务器地址 (URL)', 'Server URL'],
    token: ['令牌 (Token)', 'Token'],
    aesKey: ['消息加密密钥 (EncodingAESKey)', 'EncodingAESKey'],
    format: ['数据格式', 'Format'],
    mode: ['加密方式', 'Encryption mode'],
    plaintext: ['明文模式', 'Plaintext'],
    compatible: ['兼容模式', 'Compatible'],
    safe: ['安全模式', 'Safe'],
    extEvents: ['推送扩展事件（送达、点击、撤回…）', 'Push extension events (delivered, opened, recalled…)'],
    save: ['保存', 'Save'],
    saved: ['已保存', 'Saved'],
    testHandshake: ['测试握手', 'Test handshake'],
    handshakeOk: ['握手成功', 'Handshake succeeded'],
    remove: ['删除', 'Delete'],
    removed: ['已删除', 'Deleted'],
    notConfigured: ['尚未配置', 'Not configured'],
    deliveries: ['最近推送记录', 'Recent deliveries'],
    noDeliveries: ['暂无推送记录', 'No deliveries yet'],
    time: ['时间', 'Time'],
    event: ['事件', 'Event'],
    attempt: ['次数', 'Attempt'],
    result: ['结果', 'Result'],
    duration: ['耗时', 'Duration'],
    outcome: ['后续', 'Next'],
    myTemplates: ['我的模板', 'My templates'],
    noTemplates: ['还没有模板，从下方公共模板库添加。', 'No templates yet; add one from the library below.'],
    library: ['公共模板库', 'Template library'],
    pickCategory: ['选择类目', 'Pick a category'],
    pickTitle: ['选择模板标题', 'Pick a title'],
    more: ['更多', 'More'],
    pickKeywords: ['选择关键词（2–5 个，按选择顺序排列）', 'Pick keywords (2–5, in the order you pick them)'],
    sceneDesc: ['使用场景描述（最多 15 字）', 'Scene description (≤ 15 characters)'],
    addTemplate: ['添加模板', 'Add template'],
    added: ['模板已添加', 'Template added'],
    preview: ['用户看到的卡片', 'What the user sees'],
    oneTime: ['一次性订阅', 'One-time'],
    longTerm: ['长期订阅', 'Long-term'],
    deleteConfirm: ['确认删除？', 'Delete?'],
    deleted: ['模板已删除', 'Template deleted'],
    dup: ['已有相同标题和关键词的模板', 'A template with the same title and keywords exists'],
    cap: ['模板数量已达上限（25）', 'The app has the most templates allowed (25)'],
    openid: ['OpenID', 'OpenID'],
    lookup: ['查询', 'Look up'],
    ledgerHint: ['输入用户在本应用的 openid（可从消息列表点击收件人进入）。',
      'Enter a user\'s openid in this app (or click a recipient in the message list).'],
    mainSwitch: ['总开关', 'Main switch'],
    on: ['开', 'On'],
    off: ['关', 'Off'],
    template: ['模板', 'Template'],
    type: ['类型', 'Type'],
    status: ['状态', 'Status'],
    remaining: ['剩余次数', 'Remaining'],
    switchedOff: ['设置中关闭', 'Switched off'],
    kept: ['总是保持', 'Kept'],
    granted: ['累计授权', 'Granted'],
    consumed: ['累计消耗', 'Consumed'],
    updated: ['更新时间', 'Updated'],
    noLedger: ['该用户还没有回答过订阅请求', 'This user has not answered a prompt yet'],
    deleted_tmpl: ['（已删除的模板）', '(deleted template)'],
    messagesTo: ['发给该用户的消息', 'Messages to this user'],
    allStatuses: ['全部状态', 'All statuses'],
    allTemplates: ['全部模板', 'All templates'],
    filter: ['筛选', 'Filter'],
    newMessage: ['发送消息', 'Send a message'],
    msgid: ['消息 ID', 'Msg ID'],
    touser: ['接收者', 'Recipient'],
    title: ['标题', 'Title'],
    noMessages: ['没有符合条件的消息', 'No messages match'],
    older: ['更早的消息', 'Older'],
    pickMessage: ['选择一条消息查看时间线', 'Pick a message to see its timeline'],
    timeline: ['时间线', 'Timeline'],
    page: ['跳转页面', 'Page'],
    urgent: ['紧急', 'Urgent'],
    releaseAt: ['可送达时间', 'Released'],
    expiresAt: ['过期时间', 'Expires'],
    deliveredAt: ['送达时间', 'Delivered'],
    cancelMsg: ['取消发送', 'Cancel'],
    recallMsg: ['撤回', 'Recall'],
    refresh: ['刷新', 'Refresh'],
    send: ['发送', 'Send'],
    sentOk: ['已发送', 'Sent'],
    ttl: ['有效期（秒）', 'TTL (seconds)'],
    sendAt: ['定时发送', 'Send at'],
    idemKey: ['幂等键', 'Idempotency key'],
    optional: ['可选', 'optional'],
    data: ['模板内容', 'Data'],
    range: ['时间范围', 'Range'],
    last24h: ['最近 24 小时（按小时）', 'Last 24 hours (hourly)'],
    last7d: ['最近 7 天（按天）', 'Last 7 days (daily)'],
    last30d: ['最近 30 天（按天）', 'Last 30 days (daily)'],
    prompts: ['弹窗', 'Prompts'],
    accepted: ['同意', 'Accepted'],
    sent: ['发送', 'Sent'],
    delivered: ['送达', 'Delivered'],
    clicked: ['点击', 'Clicked'],
    converted: ['转化', 'Converted'],
    acceptRate: ['同意率', 'Accept rate'],
    deliveryRate: ['送达率', 'Delivery rate'],
    clickRate: ['点击率', 'Click rate'],
    conversionRate: ['转化率', 'Conversion rate'],
    conversionValue: ['转化金额', 'Conversion value'],
    funnel: ['转化漏斗', 'Funnel'],
    overTime: ['趋势', 'Over time'],
    refused: ['被拒绝的发送', 'Refused sends'],
    errcode: ['错误码', 'errcode'],
    count: ['次数', 'Count'],
    noRefused: ['没有被拒绝的发送', 'No refused sends'],
    perTemplate: ['各模板漏斗', 'Funnel per template'],
    perUser: ['单用户上限（所有模板）', 'Per user (all templates)'],
    perUserTemplate: ['单用户单模板上限', 'Per user and template'],
    max: ['最多', 'At most'],
    perWindow: ['条 / 每', 'per'],
    seconds: ['秒', 'seconds'],
    appDaily: ['应用每日上限（北京时间自然日）', 'App daily cap (Beijing day)'],
    appPerMinute: ['应用每分钟上限', 'App per-minute cap'],
    noLimit: ['留空表示不限', 'Empty: no limit'],
    quietHours: ['免打扰时段', 'Quiet hours'],
    quietHint: ['时段内的非紧急消息会被暂存，结束时送达。', 'Non-urgent messages inside the window are held until it ends.'],
    start: ['开始', 'Start'],
    end: ['结束', 'End'],
    utcOffset: ['UTC 偏移', 'UTC offset'],
    urgentBudget: ['紧急消息每日额度', 'Urgent daily budget'],
    urgentHint: ['紧急消息跳过免打扰和各项上限，从此额度扣除。', 'Urgent messages skip quiet hours and caps and draw from this budget.'],
    enabled: ['启用', 'Enabled'],
    policySaved: ['推送策略已保存', 'Policy saved'],
    loading: ['加载中…', 'Loading…'],
    st_scheduled: ['定时中', 'scheduled'],
    st_held: ['免打扰暂存', 'held'],
    st_accepted: ['待送达', 'accepted'],
    st_delivered: ['已送达', 'delivered'],
    st_recalled: ['已撤回', 'recalled'],
    st_expired: ['已过期', 'expired'],
    st_cancelled: ['已取消', 'cancelled'],
    ev_accepted: ['发送成功', 'accepted'],
    ev_held: ['免打扰暂存', 'held'],
    ev_scheduled: ['定时', 'scheduled'],
    ev_released: ['开始投递', 'released'],
    ev_delivered: ['设备已送达', 'delivered'],
    ev_opened: ['用户点击', 'opened'],
    ev_converted: ['转化', 'converted'],
    ev_cancelled: ['已取消', 'cancelled'],
    ev_expired: ['已过期', 'expired'],
    ev_recalled: ['已撤回', 'recalled'],
    accept: ['同意', 'accept'],
    reject: ['拒绝', 'reject'],
    never: ['未询问', 'never asked'],
    yes: ['是', 'yes'],
    no: ['否', 'no'],
  };
  let lang = localStorage.getItem('tuisong.lang') ||
    ((navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en');
  const t = (k) => (L[k] ? L[k][lang === 'zh' ? 0 : 1] : k);
  const st = (s) => t('st_' + s) === 'st_' + s ? s : t('st_' + s);

  // ------------------------------------------------------------------ state
  const S = {
    admin: sessionStorage.getItem('tuisong.admin') || '',
    apps: [],
    appid: sessionStorage.getItem('tuisong.appid') || '',
    tokens: {}, // appid → {token, until}
  };
  const root = document.getElementById('root');

  function toast(text, kind) {
    const box = document.getElementById('toasts');
    const el = h('div.toast', { test: 'toast', class: kind || 'info' }, text);
    box.appendChild(el);
    setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
  }

  // ------------------------------------------------------------------ API
  async function admin(method, path, body) {
    const r = await api(method, path, { bearer: S.admin, body });
    if (r.status === 401) {
      signOut(t('sessionEnded'));
    }
    return r;
  }

  async function appToken(appid, force) {
    const c = S.tokens[appid];
    if (!force && c && c.until > Date.now()) return c.token;
    const r = await admin('POST', '/admin/apps/' + appid + '/console-token');
    if (!r.ok) throw new Error(errorText(r));
    S.tokens[appid] = { token: r.data.access_token, until: Date.now() + (r.data.expires_in - 120) * 1000 };
    return r.data.access_token;
  }

  /** /v1 with the app's console token; one retry with a fresh token on a token error. */
  async function v1(method, path, opts = {}) {
    for (let i = 0; i < 2; i++) {
      const token = await appToken(S.appid, i > 0);
      const r = await api(method, path, { ...opts, bearer: token });
      const code = r.data && r.data.error && r.data.error.code;
      if (r.status === 401 && (code === 'token_expired' || code === 'invalid_token') && i === 0) continue;
      return r;
    }
    return null;
  }

  /** The WeChat dialect with ?access_token=; one retry on a token errcode. */
  async function wx(method, path, opts = {}) {
    for (let i = 0; i < 2; i++) {
      const token = await appToken(S.appid, i > 0);
      const r = await api(method, path, { ...opts, query: { ...(opts.query || {}), access_token: token } });
      const code = r.data && r.data.errcode;
      if ([40001, 42001, 41001, 40014].includes(code) && i === 0) continue;
      return r;
    }
    return null;
  }

  const wxOk = (r) => r && r.ok && r.data && r.data.errcode === 0;

  async function templates() {
    const r = await wx('GET', '/wxaapi/newtmpl/gettemplate');
    if (!wxOk(r)) throw new Error(errorText(r));
    return r.data.data;
  }

  // ------------------------------------------------------------------ shell
  function signOut(msg) {
    S.admin = '';
    S.tokens = {};
    sessionStorage.removeItem('tuisong.admin');
    renderSignIn(msg);
  }

  function renderSignIn(msg) {
    const input = h('input', { type: 'password', test: 'admin-token', autocomplete: 'off', placeholder: 'adm_…', id: 'admin-token' });
    const err = h('div.form-error', { test: 'signin-error', hidden: !msg }, msg || '');
    const submit = async (e) => {
      e.preventDefault();
      const tok = input.value.trim();
      if (!tok) return;
      const r = await api('GET', '/admin/apps', { bearer: tok });
      if (r.ok) {
        S.admin = tok;
        sessionStorage.setItem('tuisong.admin', tok);
        start();
      } else {
        err.hidden = false;
        err.textContent = r.status === 401 ? t('badToken') : errorText(r);
      }
    };
    mount(root, h('div.signin', null,
      langToggle(),
      h('form.signin-card', { onsubmit: submit, test: 'signin-form' },
        h('img.signin-logo', { src: '/web/icon.svg', alt: '' }),
        h('h1', null, t('signInTitle')),
        h('p.muted', null, t('signInHint')),
        h('label.field', { for: 'admin-token' }, h('span', null, t('adminToken')), input),
        err,
        h('button.btn.primary.wide', { type: 'submit', test: 'signin-submit' }, t('signIn')))));
    input.focus();
  }

  function langToggle() {
    return h('button.btn.small.lang', {
      test: 'lang-toggle', type: 'button', title: 'Language / 语言',
      onclick: () => {
        lang = lang === 'zh' ? 'en' : 'zh';
        localStorage.setItem('tuisong.lang', lang);
        document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
        if (S.admin) renderShell(); else renderSignIn();
      },
    }, lang === 'zh' ? 'EN' : '中文');
  }

  const NAV = [
    ['apps', 'navApps'], ['templates', 'navTemplates'], ['users', 'navUsers'],
    ['messages', 'navMessages'], ['analytics', 'navAnalytics'], ['policy', 'navPolicy'],
  ];

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    const view = NAV.some(([k]) => k === parts[0]) ? parts[0] : 'apps';
    return { view, arg: parts[1] || '' };
  }

  async function start() {
    const r = await admin('GET', '/admin/apps');
    if (!r.ok) return;
    S.apps = r.data.apps;
    if (!S.apps.some((a) => a.appid === S.appid)) S.appid = S.apps.length ? S.apps[0].appid : '';
    renderShell();
  }

  let viewEl;
  function renderShell() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    const { view } = route();
    const appSelect = h('select', {
      test: 'app-select',
      onchange: (e) => {
        S.appid = e.target.value;
        sessionStorage.setItem('tuisong.appid', S.appid);
        renderView();
      },
    }, S.apps.map((a) => h('option', { value: a.appid, selected: a.appid === S.appid }, a.name + ' · ' + a.appid)));
    viewEl = h('main.view', { test: 'view' });
    mount(root,
      h('header.topbar', null,
        h('a.brand', { href: '#/apps' }, h('img', { src: '/web/icon.svg', alt: '' }), h('span', null, t('brand')), h('span.brand-sub', null, t('console'))),
        h('div.topbar-app', null, h('span.muted', null, t('currentApp')), appSelect),
        h('div.topbar-right', null,
          h('a.btn.small', { href: '/simulator', target: '_blank', test: 'open-simulator' }, t('simulator')),
          langToggle(),
          h('button.btn.small', { test: 'sign-out', onclick: () => signOut() }, t('signOut')))),
      h('div.layout', null,
        h('nav.sidenav', null, NAV.map(([k, label]) =>
          h('a', { href: '#/' + k, test: 'nav-' + k, class: k === view ? 'active' : '' }, t(label)))),
        viewEl));
    renderView();
  }

  let renderSeq = 0;
  async function renderView() {
    const seq = ++renderSeq;
    const { view, arg } = route();
    document.querySelectorAll('.sidenav a').forEach((a) => a.classList.toggle('active', a.dataset.test === 'nav-' + view));
    mount(viewEl, h('div.loading', null, t('loading')));
    const body = h('div');
    try {
      if (view !== 'apps' && !S.appid) {
        mount(body, h('div.empty', null, t('noApps')));
      } else {
        await VIEWS[view](body, arg);
      }
    } catch (e) {
      mount(body, h('div.form-error', { test: 'view-error' }, String(e.message || e)));
    }
    if (seq === renderSeq) mount(viewEl, body);
  }

  window.addEventListener('hashchange', () => { if (S.admin) renderView(); });

  // ------------------------------------------------------------------ helpers
  const section = (title, ...children) => h('section.panel', null, title ? h('h2', null, title) : null, ...children);
  const field = (label, input, hint) => h('label.field', null, h('span', null, label), input, hint ? h('small.muted', null, hint) : null);
  const kindLabel = (type) => (type === 3 ? t('longTerm') : t('oneTime'));
  const badge = (text, cls, test) => h('span.badge', { class: cls, test }, text);
  const statusBadge = (s) => badge(st(s), 'st-' + s, 'message-status');
  const appName = () => (S.apps.find((a) => a.appid === S.appid) || {}).name || '';
  const table = (heads, rows, test) => h('div.table-wrap', null,
    h('table', { test }, h('thead', null, h('tr', null, heads.map((x) => h('th', null, x)))),
      rows instanceof Node && rows.tagName === 'TBODY' ? rows : h('tbody', null, rows)));

  // ------------------------------------------------------------------ Apps
  async function viewApps(el, arg) {
    if (arg) return viewApp(el, arg);
    const r = await admin('GET', '/admin/apps');
    if (!r.ok) throw new Error(errorText(r));
    S.apps = r.data.apps;
    const name = h('input', { test: 'new-app-name', placeholder: t('newAppName'), maxlength: 64 });
    const created = h('div');
    const create = async (e) => {
      e.preventDefault();
      if (!name.value.trim()) return;
      const c = await admin('POST', '/admin/apps', { name: name.value.trim() });
      if (!c.ok) return toast(errorText(c), 'error');
      S.apps.push(c.data);
      mount(created, h('div.notice', { test: 'created-app' },
        h('div', null, t('created_ok')),
        h('dl.kv', null, h('dt', null, t('appid')), h('dd.mono', null, c.data.appid),
          h('dt', null, t('secret')), h('dd.mono', { test: 'created-secret' }, c.data.secret))));
      name.value = '';
      refreshAppSelect();
      mount(list, appRows());
    };
    const appRows = () => S.apps.map((a) => h('tr', { test: 'app-row', data: { appid: a.appid }, class: 'clickable', onclick: () => { location.hash = '#/apps/' + a.appid; } },
      h('td', null, h('a', { href: '#/apps/' + a.appid }, a.name)),
      h('td.mono', null, a.appid), h('td.mono', null, a.original_id), h('td', null, fmtTime(a.created_at))));
    const list = h('tbody', null, appRows());
    mount(el,
      section(t('apps'),
        h('div.table-wrap', null, h('table', { test: 'apps-table' },
          h('thead', null, h('tr', null, [t('name'), t('appid'), t('originalId'), t('created')].map((x) => h('th', null, x)))), list)),
        S.apps.length ? null : h('div.empty', null, t('noApps'))),
      section(t('createApp'),
        h('form.row', { onsubmit: create }, name, h('button.btn.primary', { type: 'submit', test: 'create-app' }, t('createApp'))),
        created));
  }

  function refreshAppSelect() {
    const sel = document.querySelector('[data-test=app-select]');
    if (!sel) return;
    mount(sel, S.apps.map((a) => h('option', { value: a.appid, selected: a.appid === S.appid }, a.name + ' · ' + a.appid)));
  }

  async function viewApp(el, appid) {
    const r = await admin('GET', '/admin/apps/' + appid);
    if (!r.ok) throw new Error(errorText(r));
    const app = r.data;
    const secret = h('dd.mono', { test: 'app-secret' }, '••••••••••••••••••••••••••••••••');
    let shown = false;
    const revealBtn = h('button.btn.small', {
      test: 'reveal-secret',
      onclick: async () => {
        if (shown) { secret.textContent = '••••••••••••••••••••••••••••••••'; revealBtn.textContent = t('reveal'); shown = false; return; }
        const s = await admin('GET', '/admin/apps/' + appid + '/secret');
        if (!s.ok) return toast(errorText(s), 'error');
        secret.textContent = s.data.secret; revealBtn.textContent = t('hide'); shown = true;
      },
    }, t('reveal'));
    const resetBox = h('span.inline');
    const resetIdle = () => mount(resetBox, h('button.btn.small.danger', { test: 'reset-secret', onclick: resetAsk }, t('resetSecret')));
    const resetAsk = () => mount(resetBox,
      h('span.muted', null, t('confirmReset')), ' ',
      h('button.btn.small.danger', {
        test: 'reset-secret-confirm',
        onclick: async () => {
          const s = await admin('POST', '/admin/apps/' + appid + '/reset-secret');
          if (!s.ok) return toast(errorText(s), 'error');
          secret.textContent = s.data.secret; revealBtn.textContent = t('hide'); shown = true;
          toast(t('secretReset'));
          resetIdle();
        },
      }, t('confirm')), ' ',
      h('button.btn.small', { onclick: resetIdle }, t('cancel')));
    resetIdle();

    mount(el,
      h('div.crumbs', null, h('a', { href: '#/apps' }, '← ' + t('apps')), h('span', null, ' / ' + app.name)),
      section(t('credentials'),
        h('dl.kv', { test: 'credentials' },
          h('dt', null, t('name')), h('dd', null, app.name),
          h('dt', null, t('appid')), h('dd.mono', { test: 'app-appid' }, app.appid),
          h('dt', null, t('originalId')), h('dd.mono', null, app.original_id),
          h('dt', null, t('created')), h('dd', null, fmtTime(app.created_at)),
          h('dt', null, t('secret')), secret),
        h('div.row', null, revealBtn, resetBox)),
      await pushConfigPanel(appid));
  }

  async function pushConfigPanel(appid) {
    const base = '/admin/apps/' + appid + '/push-config';
    const cur = await admin('GET', base);
    const c = cur.ok ? cur.data : null;
    const url = h('input', { test: 'push-url', placeholder: 'https://example.com/wx/push', value: c ? c.url : '' });
    const token = h('input', { test: 'push-token', placeholder: c ? c.token : '3–32 letters or digits' });
    const aes = h('input', { test: 'push-aes', placeholder: c && c.encoding_aes_key ? c.encoding_aes_key : '43 characters' });
    const format = h('select', { test: 'push-format' }, ['xml', 'json'].map((f) => h('option', { value: f, selected: c && c.format === f }, f.toUpperCase())));
    const mode = h('select', { test: 'push-mode' }, ['plaintext', 'compatible', 'safe'].map((m) => h('option', { value: m, selected: c && c.mode === m }, t(m))));
    const ext = h('input', { type: 'checkbox', test: 'push-ext', checked: c && c.extension_events });
    const state = h('div.push-state', { test: 'push-state' },
      c ? h('span', null, badge(t('enabled'), 'ok'), ' ', h('span.mono', null, c.url), ' · ', fmtTime(c.updated_at)) : h('span.muted', null, t('notConfigured')));
    const deliveries = h('div', { test: 'deliveries' });
    const loadDeliveries = async () => {
      const d = await admin('GET', base + '/deliveries');
      const list = d.ok ? d.data.attempts : [];
      mount(deliveries, list.length === 0 ? h('div.empty', null, t('noDeliveries')) :
        table([t('time'), t('event'), t('openid'), t('attempt'), t('result'), t('duration'), t('outcome')],
          list.map((a) => h('tr', { test: 'delivery-row' },
            h('td', null, fmtTime(a.at)), h('td', null, a.event), h('td.mono.ellipsis', null, a.openid),
            h('td', null, String(a.attempt)),
            h('td', null, a.ok ? badge('OK' + (a.http_status ? ' ' + a.http_status : ''), 'ok') :
              badge((a.http_status ? 'HTTP ' + a.http_status : 'ERR'), 'bad'), a.error ? h('div.small.muted', null, a.error) : null),
            h('td', null, a.duration_ms + ' ms'), h('td', null, a.outcome)))));
    };
    const save = async (e) => {
      e.preventDefault();
      const body = { url: url.value.trim(), token: token.value.trim(), encoding_aes_key: aes.value.trim() || null, format: format.value, mode: mode.value, extension_events: ext.checked };
      const r = await admin('PUT', base, body);
      if (!r.ok) return toast(errorText(r), 'error');
      toast(t('saved'));
      mount(state, h('span', null, badge(t('enabled'), 'ok'), ' ', h('span.mono', null, r.data.url), ' · ', fmtTime(r.data.updated_at)));
    };
    const test = async () => {
      const r = await admin('POST', base + '/test');
      if (!r.ok) return toast(errorText(r), 'error');
      toast(t('handshakeOk') + ' · ' + r.data.url);
    };
    const del = async () => {
      const r = await admin('DELETE', base);
      if (!r.ok) return toast(errorText(r), 'error');
      toast(t('removed'));
      mount(state, h('span.muted', null, t('notConfigured')));
    };
    await loadDeliveries();
    return h('div', null,
      section(t('pushConfig'),
        h('p.muted', null, t('pushHint')),
        state,
        h('form.grid2', { onsubmit: save, test: 'push-form' },
          field(t('url'), url), field(t('token'), token), field(t('aesKey'), aes),
          field(t('format'), format), field(t('mode'), mode),
          h('label.check', null, ext, t('extEvents')),
          h('div.row.span2', null,
            h('button.btn.primary', { type: 'submit', test: 'push-save' }, t('save')),
            h('button.btn', { type: 'button', test: 'push-test', onclick: test }, t('testHandshake')),
            h('button.btn.danger', { type: 'button', test: 'push-delete', onclick: del }, t('remove'))))),
      section(t('deliveries'), h('div.row', null, h('button.btn.small', { onclick: loadDeliveries, test: 'deliveries-refresh' }, t('refresh'))), deliveries));
  }

  // ------------------------------------------------------------------ Templates
  async function viewTemplates(el) {
    const mine = h('div.card-grid', { test: 'my-templates' });
    const loadMine = async () => {
      const list = await templates();
      mount(mine, list.length === 0 ? h('div.empty', null, t('noTemplates')) : list.map((tp) => {
        const del = h('span.inline');
        const idle = () => mount(del, h('button.btn.small.danger', { test: 'delete-template', onclick: ask }, t('remove')));
        const ask = () => mount(del, h('span.muted', null, t('deleteConfirm')), ' ',
          h('button.btn.small.danger', {
            test: 'delete-template-confirm',
            onclick: async () => {
              const r = await wx('POST', '/wxaapi/newtmpl/deltemplate', { body: { priTmplId: tp.priTmplId } });
              if (!wxOk(r)) return toast(errorText(r), 'error');
              toast(t('deleted'));
              loadMine();
            },
          }, t('confirm')), ' ', h('button.btn.small', { onclick: idle }, t('cancel')));
        idle();
        return h('div.tmpl', { test: 'template', data: { id: tp.priTmplId } },
          card(tp.title, templateRows(tp), { app: appName(), test: 'template-card' }),
          h('div.tmpl-meta', null,
            badge(kindLabel(tp.type), tp.type === 3 ? 'long' : 'once'),
            h('code.ellipsis', { title: tp.priTmplId }, tp.priTmplId),
            del));
      }));
    };

    // The library: categories → titles → keywords.
    const cats = await wx('GET', '/wxaapi/newtmpl/getcategory');
    if (!wxOk(cats)) throw new Error(errorText(cats));
    const titles = h('div.titles', { test: 'library-titles' }, h('div.muted', null, t('pickCategory')));
    const picker = h('div.picker', { test: 'keyword-picker' });
    let activeCat = null;
    const catChips = h('div.chips', null, cats.data.data.map((c) => h('button.chip', {
      type: 'button', test: 'category', data: { id: c.id },
      onclick: (e) => {
        activeCat = c.id;
        catChips.querySelectorAll('.chip').forEach((x) => x.classList.toggle('active', x === e.currentTarget));
        loadTitles(c.id, 0, true);
        mount(picker);
      },
    }, c.name)));

    const loadTitles = async (cat, startAt, fresh) => {
      const r = await wx('GET', '/wxaapi/newtmpl/getpubtemplatetitles', { query: { ids: cat, start: startAt, limit: 30 } });
      if (!wxOk(r)) return toast(errorText(r), 'error');
      if (cat !== activeCat) return;
      const items = r.data.data.map((x) => h('button.title-item', {
        type: 'button', test: 'library-title', data: { tid: x.tid },
        onclick: (e) => {
          titles.querySelectorAll('.title-item').forEach((b) => b.classList.toggle('active', b === e.currentTarget));
          pickKeywords(x);
        },
      }, h('span', null, x.title), badge(kindLabel(x.type), x.type === 3 ? 'long' : 'once')));
      if (fresh) mount(titles);
      titles.querySelectorAll('[data-test=library-more]').forEach((b) => b.remove());
      TS.append(titles, items);
      const shown = startAt + r.data.data.length;
      if (shown < r.data.count) {
        titles.appendChild(h('button.btn.small', { test: 'library-more', onclick: () => loadTitles(cat, shown, false) }, t('more')));
      }
    };

    const pickKeywords = async (title) => {
      const r = await wx('GET', '/wxaapi/newtmpl/getpubtemplatekeywords', { query: { tid: title.tid } });
      if (!wxOk(r)) return toast(errorText(r), 'error');
      const kws = r.data.data;
      const chosen = [];
      const scene = h('input', { test: 'scene-desc', maxlength: 15, placeholder: t('sceneDesc') });
      const preview = h('div.preview');
      const addBtn = h('button.btn.primary', { test: 'add-template', disabled: true }, t('addTemplate'));
      const kwList = h('div.kw-list');
      const redraw = () => {
        kwList.querySelectorAll('.kw').forEach((b) => {
          const i = chosen.indexOf(Number(b.dataset.kid));
          b.classList.toggle('active', i >= 0);
          b.querySelector('.kw-n').textContent = i >= 0 ? String(i + 1) : '';
        });
        const rows = chosen.map((kid) => kws.find((k) => k.kid === kid)).map((k) => ({ name: k.name, value: k.example }));
        mount(preview, h('div.muted.small', null, t('preview')), card(title.title, rows, { app: appName(), test: 'preview-card' }));
        addBtn.disabled = chosen.length < 2 || chosen.length > 5;
      };
      TS.append(kwList, kws.map((k) => h('button.kw', {
        type: 'button', test: 'keyword', data: { kid: k.kid },
        onclick: () => {
          const i = chosen.indexOf(k.kid);
          if (i >= 0) chosen.splice(i, 1); else if (chosen.length < 5) chosen.push(k.kid);
          redraw();
        },
      }, h('span.kw-n'), h('span.kw-name', null, k.name), h('span.kw-ex.muted', null, k.example), h('code.kw-rule', null, k.rule))));
      addBtn.addEventListener('click', async () => {
        addBtn.disabled = true;
        const body = { tid: String(title.tid), kidList: chosen.slice(), sceneDesc: scene.value.trim() };
        const a = await wx('POST', '/wxaapi/newtmpl/addtemplate', { body });
        if (!wxOk(a)) {
          const code = a && a.data && a.data.errcode;
          toast(code === 200022 ? t('dup') : code === 200012 ? t('cap') : errorText(a), 'error');
          addBtn.disabled = false;
          return;
        }
        toast(t('added') + ' · ' + a.data.priTmplId);
        mount(picker);
        titles.querySelectorAll('.title-item').forEach((b) => b.classList.remove('active'));
        await loadMine();
      });
      mount(picker,
        h('h3', null, title.title, ' ', badge(kindLabel(title.type), title.type === 3 ? 'long' : 'once')),
        h('div.picker-cols', null,
          h('div', null, h('div.muted.small', null, t('pickKeywords')), kwList,
            field(t('sceneDesc'), scene), h('div.row', null, addBtn)),
          preview));
      redraw();
    };

    await loadMine();
    mount(el,
      section(t('myTemplates'), mine),
      section(t('library'), catChips, h('div.library', null, titles, picker)));
  }

  // ------------------------------------------------------------------ Users & consent
  async function viewUsers(el, arg) {
    const input = h('input.grow', { test: 'ledger-openid', placeholder: 'o…', value: arg || '', spellcheck: 'false' });
    const out = h('div', { test: 'ledger' });
    const look = async (e) => {
      if (e) e.preventDefault();
      const openid = input.value.trim();
      if (!openid) return;
      if (route().arg !== openid) history.replaceState(null, '', '#/users/' + encodeURIComponent(openid));
      const r = await v1('GET', '/v1/consents/' + encodeURIComponent(openid));
      if (!r.ok) return mount(out, h('div.form-error', { test: 'ledger-error' }, errorText(r)));
      const d = r.data;
      mount(out,
        h('div.row', null,
          h('span', null, t('mainSwitch'), ': '), badge(d.main_switch ? t('on') : t('off'), d.main_switch ? 'ok' : 'bad', 'ledger-main-switch'),
          h('a.btn.small', { href: '#/messages', onclick: () => { MSG_FILTER.touser = openid; } }, t('messagesTo'))),
        d.templates.length === 0 ? h('div.empty', null, t('noLedger')) :
          table([t('template'), t('type'), t('status'), t('remaining'), t('switchedOff'), t('kept'), t('granted'), t('consumed'), t('updated')],
            d.templates.map((c) => h('tr', { test: 'ledger-row', data: { template: c.template_id } },
              h('td', null, c.title || t('deleted_tmpl'), h('div.mono.small.muted.ellipsis', null, c.template_id)),
              h('td', null, c.type ? kindLabel(c.type) : '—'),
              h('td', null, c.status ? badge(t(c.status), c.status === 'accept' ? 'ok' : 'bad', 'ledger-status') : h('span.muted', null, t('never'))),
              h('td.num', { test: 'ledger-remaining' }, c.type === 3 ? '∞' : String(c.remaining)),
              h('td', null, c.switched_off ? badge(t('yes'), 'bad') : t('no')),
              h('td', null, c.kept ? t(c.kept) : '—'),
              h('td.num', null, String(c.granted_total)), h('td.num', null, String(c.consumed_total)),
              h('td', null, fmtTime(c.updated_at))))));
    };
    mount(el, section(t('navUsers'),
      h('p.muted', null, t('ledgerHint')),
      h('form.row', { onsubmit: look }, input, h('button.btn.primary', { type: 'submit', test: 'ledger-lookup' }, t('lookup'))),
      out));
    if (arg) await look();
  }

  // ------------------------------------------------------------------ Messages
  const MSG_FILTER = { status: '', template_id: '', touser: '' };
  const STATUSES = ['scheduled', 'held', 'accepted', 'delivered', 'recalled', 'expired', 'cancelled'];

  async function viewMessages(el, arg) {
    const tmpls = await templates();
    const titleOf = (id) => (tmpls.find((x) => x.priTmplId === id) || {}).title || id;
    const status = h('select', { test: 'filter-status' }, h('option', { value: '' }, t('allStatuses')),
      STATUSES.map((s) => h('option', { value: s, selected: MSG_FILTER.status === s }, st(s))));
    const tmpl = h('select', { test: 'filter-template' }, h('option', { value: '' }, t('allTemplates')),
      tmpls.map((x) => h('option', { value: x.priTmplId, selected: MSG_FILTER.template_id === x.priTmplId }, x.title)));
    const touser = h('input', { test: 'filter-openid', placeholder: t('openid'), value: MSG_FILTER.touser, spellcheck: 'false' });
    const rows = h('tbody');
    const moreBox = h('div.row');
    const detail = h('div.detail', { test: 'message-detail-box' }, h('div.empty', null, t('pickMessage')));
    const sendBox = h('div', { hidden: true });

    const load = async (before) => {
      MSG_FILTER.status = status.value; MSG_FILTER.template_id = tmpl.value; MSG_FILTER.touser = touser.value.trim();
      const r = await v1('GET', '/v1/messages', { query: { ...MSG_FILTER, before, limit: 20 } });
      if (!r.ok) return toast(errorText(r), 'error');
      if (!before) mount(rows);
      if (!before && r.data.messages.length === 0) rows.appendChild(h('tr', null, h('td.empty', { colspan: 5 }, t('noMessages'))));
      TS.append(rows, r.data.messages.map((m) => h('tr.clickable', {
        test: 'message-row', data: { msgid: m.msgid },
        onclick: () => { history.replaceState(null, '', '#/messages/' + m.msgid); showDetail(m.msgid); },
      },
      h('td.mono', null, String(m.msgid)), h('td', null, fmtTime(m.created_at)), h('td', null, m.title),
      h('td.mono.ellipsis', null, h('a', { href: '#/users/' + encodeURIComponent(m.touser), onclick: (e) => e.stopPropagation() }, m.touser)),
      h('td', null, statusBadge(m.status), m.urgent ? badge(t('urgent'), 'bad') : null))));
      mount(moreBox, r.data.next_before ? h('button.btn.small', { test: 'messages-older', onclick: () => load(r.data.next_before) }, t('older')) : null);
    };

    const showDetail = async (msgid) => {
      rows.querySelectorAll('tr').forEach((tr) => tr.classList.toggle('selected', tr.dataset.msgid === String(msgid)));
      const r = await v1('GET', '/v1/messages/' + msgid);
      if (!r.ok) return mount(detail, h('div.form-error', null, errorText(r)));
      const m = r.data;
      const act = async (what) => {
        const a = await v1('POST', '/v1/messages/' + msgid + '/' + what);
        if (!a.ok) toast(errorText(a), 'error'); else toast('#' + msgid + ' → ' + st(a.data.status));
        await showDetail(msgid);
        const tr = rows.querySelector('tr[data-msgid="' + msgid + '"] [data-test=message-status]');
        if (tr && a.ok) tr.replaceWith(statusBadge(a.data.status));
      };
      const pending = ['scheduled', 'held', 'accepted'].includes(m.status);
      mount(detail, h('div', { test: 'message-detail', data: { msgid: m.msgid, status: m.status } },
        h('div.detail-head', null, h('h3', null, '#' + m.msgid + ' ', m.title), statusBadge(m.status)),
        h('div.row', null,
          pending ? h('button.btn.small', { test: 'cancel-message', onclick: () => act('cancel') }, t('cancelMsg')) : null,
          pending || m.status === 'delivered' ? h('button.btn.small.danger', { test: 'recall-message', onclick: () => act('recall') }, t('recallMsg')) : null,
          h('button.btn.small', { test: 'detail-refresh', onclick: () => showDetail(msgid) }, t('refresh'))),
        h('div.detail-cols', null,
          card(m.title, m.rows, { app: appName(), time: fmtTime(m.created_at).slice(5, 16), test: 'detail-card' }),
          h('dl.kv', null,
            h('dt', null, t('touser')), h('dd.mono.ellipsis', null, m.touser),
            h('dt', null, t('template')), h('dd.mono.ellipsis', null, m.template_id),
            h('dt', null, t('page')), h('dd.mono', null, m.page || '—'),
            h('dt', null, t('urgent')), h('dd', null, m.urgent ? t('yes') : t('no')),
            h('dt', null, t('created')), h('dd', null, fmtTime(m.created_at)),
            h('dt', null, t('releaseAt')), h('dd', null, fmtTime(m.release_at)),
            h('dt', null, t('expiresAt')), h('dd', null, fmtTime(m.expires_at)),
            h('dt', null, t('deliveredAt')), h('dd', null, fmtTime(m.delivered_at)))),
        h('h4', null, t('timeline')),
        h('ol.timeline', { test: 'timeline' }, m.timeline.map((ev) => h('li', { test: 'timeline-event', data: { event: ev.event } },
          h('span.tl-dot', { class: 'ev-' + ev.event }),
          h('span.tl-event', null, t('ev_' + ev.event)),
          ev.device ? h('span.tl-device.mono', null, ev.device) : null,
          ev.detail ? h('span.tl-detail.muted', null, ev.detail) : null,
          h('span.tl-at.muted', null, fmtTime(ev.at)))))));
    };

    // The send form: fields follow the chosen template's keys, prefilled with examples.
    const buildSend = () => {
      const to = h('input', { test: 'send-touser', placeholder: 'o…', value: MSG_FILTER.touser, spellcheck: 'false' });
      const which = h('select', { test: 'send-template' }, tmpls.map((x) => h('option', { value: x.priTmplId }, x.title)));
      const fields = h('div.grid2');
      const page = h('input', { test: 'send-page', placeholder: 'pages/index/index?id=1' });
      const urgent = h('input', { type: 'checkbox', test: 'send-urgent' });
      const ttl = h('input', { type: 'number', min: 1, test: 'send-ttl', placeholder: t('optional') });
      const sendAt = h('input', { type: 'datetime-local', test: 'send-at' });
      const idem = h('input', { test: 'send-idem', placeholder: t('optional') });
      const drawFields = () => {
        const tp = tmpls.find((x) => x.priTmplId === which.value);
        mount(fields, tp ? templateRows(tp).map((r) => field(r.name + ' · ' + r.key, h('input', { test: 'send-field', data: { key: r.key }, value: r.value }))) : null);
      };
      which.addEventListener('change', drawFields);
      drawFields();
      const submit = async (e) => {
        e.preventDefault();
        const data = {};
        fields.querySelectorAll('[data-test=send-field]').forEach((i) => { data[i.dataset.key] = { value: i.value }; });
        const body = { touser: to.value.trim(), template_id: which.value, data, page: page.value.trim() || null, urgent: urgent.checked };
        if (ttl.value) body.ttl_seconds = Number(ttl.value);
        if (sendAt.value) body.send_at = Math.floor(new Date(sendAt.value).getTime() / 1000);
        if (idem.value.trim()) body.idempotency_key = idem.value.trim();
        const r = await v1('POST', '/v1/messages', { body });
        if (!r.ok) return toast(errorText(r), 'error');
        toast(t('sentOk') + ' · #' + r.data.msgid + ' · ' + st(r.data.status));
        await load();
        history.replaceState(null, '', '#/messages/' + r.data.msgid);
        await showDetail(r.data.msgid);
      };
      mount(sendBox, section(t('newMessage'),
        h('form', { onsubmit: submit, test: 'send-form' },
          h('div.grid2', null, field(t('touser'), to), field(t('template'), which)),
          h('h4', null, t('data')), fields,
          h('div.grid2', null, field(t('page'), page), field(t('ttl'), ttl), field(t('sendAt'), sendAt), field(t('idemKey'), idem)),
          h('label.check', null, urgent, t('urgent')),
          h('div.row', null, h('button.btn.primary', { type: 'submit', test: 'send-submit' }, t('send'))))));
    };
    buildSend();

    mount(el,
      h('div.row.toolbar', null, status, tmpl, touser,
        h('button.btn.primary', { test: 'filter-apply', onclick: () => load() }, t('filter')),
        h('span.grow'),
        h('button.btn', { test: 'toggle-send', onclick: () => { sendBox.hidden = !sendBox.hidden; } }, t('newMessage'))),
      sendBox,
      h('div.split', null,
        section(null, table([t('msgid'), t('time'), t('title'), t('touser'), t('status')], rows, 'messages-table'), moreBox),
        section(null, detail)));
    await load();
    if (arg) await showDetail(arg);
  }

  // ------------------------------------------------------------------ Analytics
  const RANGES = { '24h': [24 * 3600, 'hour'], '7d': [7 * 86400, 'day'], '30d': [30 * 86400, 'day'] };
  const A = { template: '', range: '24h' };

  async function viewAnalytics(el) {
    const tmpls = await templates();
    const sel = h('select', { test: 'analytics-template' }, h('option', { value: '' }, t('allTemplates')),
      tmpls.map((x) => h('option', { value: x.priTmplId, selected: A.template === x.priTmplId }, x.title)));
    const range = h('select', { test: 'analytics-range' },
      [['24h', 'last24h'], ['7d', 'last7d'], ['30d', 'last30d']].map(([k, l]) => h('option', { value: k, selected: A.range === k }, t(l))));
    const out = h('div');
    const perTmpl = h('div');
    const load = async () => {
      A.template = sel.value; A.range = range.value;
      const [span, gran] = RANGES[A.range];
      const to = Math.floor(Date.now() / 1000) + 60;
      const from = to - span;
      const r = await v1('GET', '/v1/stats', { query: { template_id: A.template, from, to, granularity: gran } });
      if (!r.ok) return mount(out, h('div.form-error', null, errorText(r)));
      drawReport(out, r.data);
      const rows = await Promise.all(tmpls.map(async (x) => {
        const s = await v1('GET', '/v1/stats', { query: { template_id: x.priTmplId, from, to, granularity: gran } });
        return [x, s.ok ? s.data.funnel : null];
      }));
      mount(perTmpl, table([t('template'), t('prompts'), t('accepted'), t('acceptRate'), t('sent'), t('delivered'), t('deliveryRate'), t('clicked'), t('clickRate'), t('converted'), t('conversionRate')],
        rows.map(([x, f]) => h('tr', { test: 'template-funnel-row', data: { id: x.priTmplId } },
          h('td', null, x.title),
          ...(f ? [f.prompts, f.accepted, fmtPct(f.accept_rate), f.sent, f.delivered, fmtPct(f.delivery_rate), f.clicked, fmtPct(f.click_rate), f.converted, fmtPct(f.conversion_rate)]
            : Array(10).fill('—')).map((v) => h('td.num', null, String(v)))))));
    };
    sel.addEventListener('change', load);
    range.addEventListener('change', load);
    mount(el,
      h('div.row.toolbar', null, sel, range, h('button.btn', { test: 'analytics-refresh', onclick: load }, t('refresh'))),
      out,
      section(t('perTemplate'), perTmpl));
    await load();
  }

  function drawReport(el, rep) {
    const f = rep.funnel;
    const stages = [['prompts', f.prompts], ['accepted', f.accepted], ['sent', f.sent], ['delivered', f.delivered], ['clicked', f.clicked], ['converted', f.converted]];
    const top = Math.max(1, ...stages.map((s) => s[1]));
    const bars = h('div.funnel', { test: 'funnel' }, stages.map(([k, v]) => {
      const fill = h('div.funnel-fill');
      fill.style.width = Math.max(v > 0 ? 2 : 0, (v / top) * 100) + '%';
      return h('div.funnel-row', null,
        h('span.funnel-label', null, t(k)),
        h('div.funnel-bar', null, fill),
        h('span.funnel-n', { test: 'funnel-' + k }, String(v)));
    }));
    const kpi = (label, value, test) => h('div.kpi', null, h('div.kpi-v', { test }, value), h('div.kpi-l', null, label));
    const refusedRows = Object.entries(rep.refused);
    mount(el,
      h('div.kpis', null,
        kpi(t('acceptRate'), fmtPct(f.accept_rate), 'rate-accept'),
        kpi(t('deliveryRate'), fmtPct(f.delivery_rate), 'rate-delivery'),
        kpi(t('clickRate'), fmtPct(f.click_rate), 'rate-click'),
        kpi(t('conversionRate'), fmtPct(f.conversion_rate), 'rate-conversion'),
        kpi(t('conversionValue'), String(f.conversion_value), 'conversion-value')),
      h('div.split', null,
        section(t('funnel'), bars),
        section(t('overTime'), chart(rep))),
      section(t('refused'), refusedRows.length === 0 ? h('div.muted', null, t('noRefused')) :
        table([t('errcode'), t('count')], refusedRows.map(([code, n]) => h('tr', { test: 'refused-row' }, h('td.mono', null, code), h('td.num', null, String(n)))))));
  }

  /** The series as an inline SVG bar chart: sent, delivered and clicked per bucket. */
  function chart(rep) {
    const step = rep.granularity === 'day' ? 86400000 : 3600000;
    const offset = rep.granularity === 'day' ? 8 * 3600000 : 0; // days start at Beijing midnight
    const first = Math.floor((rep.from + offset) / step) * step - offset;
    const byAt = new Map(rep.series.map((b) => [b.at, b.counts]));
    const buckets = [];
    for (let at = first; at < rep.to; at += step) buckets.push({ at, c: byAt.get(at) || {} });
    const kinds = [['sent', '#2f6fed', 'sent'], ['delivered', '#07c160', 'delivered'], ['opened', '#f59e0b', 'clicked']];
    const W = 560, H = 240, P = { l: 34, r: 8, t: 10, b: 26 };
    const max = Math.max(1, ...buckets.flatMap((b) => kinds.map(([k]) => b.c[k] || 0)));
    const ticks = Math.min(4, max);
    const yMax = Math.ceil(max / ticks) * ticks;
    const slot = (W - P.l - P.r) / Math.max(1, buckets.length);
    const bar = Math.max(1, Math.min(10, (slot - 2) / kinds.length));
    const y = (v) => H - P.b - (v / yMax) * (H - P.t - P.b);
    const svg = h('svg.chart', { viewBox: `0 0 ${W} ${H}`, test: 'stats-chart', role: 'img' });
    for (let i = 0; i <= ticks; i++) {
      const v = (yMax / ticks) * i;
      svg.appendChild(h('line', { x1: P.l, x2: W - P.r, y1: y(v), y2: y(v), class: 'grid' }));
      svg.appendChild(h('text', { x: P.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, String(v)));
    }
    const labelEvery = Math.max(1, Math.ceil(buckets.length / 8));
    buckets.forEach((b, i) => {
      const x0 = P.l + slot * i + (slot - bar * kinds.length) / 2;
      kinds.forEach(([k, color, label], j) => {
        const v = b.c[k] || 0;
        if (!v) return;
        svg.appendChild(h('rect', { x: x0 + j * bar, y: y(v), width: Math.max(1, bar - 1), height: H - P.b - y(v), fill: color, rx: 1, test: 'bar-' + k },
          h('title', null, t(label) + ' ' + v + ' · ' + fmtTime(b.at))));
      });
      if (i % labelEvery !== 0) return;
      const d = new Date(b.at);
      const text = rep.granularity === 'day' ? TS.pad(d.getMonth() + 1) + '-' + TS.pad(d.getDate()) : TS.pad(d.getHours()) + ':00';
      svg.appendChild(h('text', { x: P.l + slot * i + slot / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis' }, text));
    });
    const legend = h('div.legend', null, kinds.map(([, color, label]) => {
      const sw = h('i');
      sw.style.background = color;
      return h('span', null, sw, t(label));
    }));
    return h('div.chart-box', null, svg, legend);
  }

  // ------------------------------------------------------------------ Policy
  async function viewPolicy(el) {
    const r = await v1('GET', '/v1/policy');
    if (!r.ok) throw new Error(errorText(r));
    const p = r.data;
    const cap = (key, label) => {
      const on = h('input', { type: 'checkbox', test: 'policy-' + key + '-on', checked: !!p[key] });
      const max = h('input', { type: 'number', min: 1, test: 'policy-' + key + '-max', value: p[key] ? p[key].max : 60 });
      const win = h('input', { type: 'number', min: 1, test: 'policy-' + key + '-window', value: p[key] ? p[key].window_secs : 3600 });
      const sync = () => { max.disabled = win.disabled = !on.checked; };
      on.addEventListener('change', sync); sync();
      return { get: () => (on.checked ? { max: Number(max.value), window_secs: Number(win.value) } : null),
        el: h('fieldset.policy', null, h('legend', null, h('label.check', null, on, label)),
          h('div.row', null, t('max'), max, t('perWindow'), win, t('seconds'))) };
    };
    const perUser = cap('per_user', t('perUser'));
    const perUT = cap('per_user_template', t('perUserTemplate'));
    const num = (key, v) => h('input', { type: 'number', min: 0, test: 'policy-' + key, value: v === null ? '' : v, placeholder: t('noLimit') });
    const daily = num('app_daily', p.app_daily);
    const perMin = num('app_per_minute', p.app_per_minute);
    const budget = num('urgent_daily_budget', p.urgent_daily_budget);
    const q = p.quiet_hours;
    const qOn = h('input', { type: 'checkbox', test: 'policy-quiet-on', checked: !!q });
    const qStart = h('input', { type: 'time', test: 'policy-quiet-start', value: q ? q.start : '22:00' });
    const qEnd = h('input', { type: 'time', test: 'policy-quiet-end', value: q ? q.end : '08:00' });
    const qOff = h('input', { test: 'policy-quiet-offset', value: q ? q.utc_offset : '+08:00', size: 6 });
    const qSync = () => { qStart.disabled = qEnd.disabled = qOff.disabled = !qOn.checked; };
    qOn.addEventListener('change', qSync); qSync();
    const intOrNull = (i) => (i.value === '' ? null : Number(i.value));
    const save = async (e) => {
      e.preventDefault();
      const body = {
        per_user: perUser.get(), per_user_template: perUT.get(),
        app_daily: intOrNull(daily), app_per_minute: intOrNull(perMin),
        quiet_hours: qOn.checked ? { start: qStart.value, end: qEnd.value, utc_offset: qOff.value.trim() } : null,
        urgent_daily_budget: budget.value === '' ? 0 : Number(budget.value),
      };
      const s = await v1('PUT', '/v1/policy', { body });
      if (!s.ok) return toast(errorText(s), 'error');
      toast(t('policySaved'));
    };
    mount(el, section(t('navPolicy'),
      h('form.policy-form', { onsubmit: save, test: 'policy-form' },
        perUser.el, perUT.el,
        h('fieldset.policy', null, h('legend', null, t('appDaily')), daily, h('small.muted', null, ' ', t('noLimit'))),
        h('fieldset.policy', null, h('legend', null, t('appPerMinute')), perMin, h('small.muted', null, ' ', t('noLimit'))),
        h('fieldset.policy', null, h('legend', null, h('label.check', null, qOn, t('quietHours'))),
          h('div.row', null, t('start'), qStart, t('end'), qEnd, t('utcOffset'), qOff),
          h('small.muted', null, t('quietHint'))),
        h('fieldset.policy', null, h('legend', null, t('urgentBudget')), budget, h('small.muted', null, ' ', t('urgentHint'))),
        h('div.row', null, h('button.btn.primary', { type: 'submit', test: 'policy-save' }, t('save'))))));
  }

  const VIEWS = {
    apps: viewApps, templates: viewTemplates, users: viewUsers,
    messages: viewMessages, analytics: viewAnalytics, policy: viewPolicy,
  };

  if (S.admin) start(); else renderSignIn();
})();
