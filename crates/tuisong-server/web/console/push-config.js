// One app's message push config (the URL tuisong posts events to, WeChat's handshake)
// and its recent deliveries; a panel of the app view.
import { h, mount, errorText, fmtTime } from '../common.js';
import { t } from './i18n.js';
import { admin } from './api.js';
import { toast, section, field, badge, table } from './dom.js';

export async function pushConfigPanel(appid) {
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
