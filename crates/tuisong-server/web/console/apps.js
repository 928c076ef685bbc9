// The apps view: the list with a create form (#/apps), and one app's credentials and
// push config (#/apps/{appid}).
import { h, mount, errorText, fmtTime } from '../common.js';
import { t } from './i18n.js';
import { S } from './state.js';
import { admin } from './api.js';
import { toast, section } from './dom.js';
import { pushConfigPanel } from './push-config.js';

export async function viewApps(el, arg) {
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
