// The users view (#/users/{openid}): one user's consent ledger, per template.
import { h, mount, errorText, fmtTime } from '../common.js';
import { t } from './i18n.js';
import { MSG_FILTER, route } from './state.js';
import { v1 } from './api.js';
import { section, kindLabel, badge, table } from './dom.js';

export async function viewUsers(el, arg) {
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
