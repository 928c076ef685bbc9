// The messages view (#/messages/{msgid}): the filtered list, one message's card and
// timeline with cancel and recall, and the send form (send.js).
import { h, mount, append, errorText, fmtTime, card } from '../common.js';
import { t, st } from './i18n.js';
import { MSG_FILTER } from './state.js';
import { v1, templates } from './api.js';
import { toast, section, badge, statusBadge, appName, table } from './dom.js';
import { sendForm } from './send.js';

const STATUSES = ['scheduled', 'held', 'accepted', 'delivered', 'recalled', 'expired', 'cancelled'];

export async function viewMessages(el, arg) {
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
    append(rows, r.data.messages.map((m) => h('tr.clickable', {
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

  mount(sendBox, sendForm(tmpls, async (msgid) => {
    await load();
    history.replaceState(null, '', '#/messages/' + msgid);
    await showDetail(msgid);
  }));

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
