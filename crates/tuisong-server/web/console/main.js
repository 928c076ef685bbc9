// The operator's console: a client of the public APIs only (see api.js). This module
// boots it: the sign-in page, the shell (top bar, side navigation) and the routing of
// the location hash (#/view/arg) to one view module.
import { h, mount, api, errorText } from '../common.js';
import { lang, t, toggleLang } from './i18n.js';
import { S, NAV, route } from './state.js';
import { admin, onSessionEnded } from './api.js';
import { viewApps } from './apps.js';
import { viewTemplates } from './templates.js';
import { viewUsers } from './users.js';
import { viewMessages } from './messages.js';
import { viewAnalytics } from './analytics.js';
import { viewPolicy } from './policy.js';

const root = document.getElementById('root');

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
      toggleLang();
      document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
      if (S.admin) renderShell(); else renderSignIn();
    },
  }, lang === 'zh' ? 'EN' : '中文');
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

const VIEWS = {
  apps: viewApps, templates: viewTemplates, users: viewUsers,
  messages: viewMessages, analytics: viewAnalytics, policy: viewPolicy,
};

onSessionEnded(signOut);
window.addEventListener('hashchange', () => { if (S.admin) renderView(); });
if (S.admin) start(); else renderSignIn();
