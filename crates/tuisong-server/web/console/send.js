// The send form of the messages view: a message to one user from one of the app's
// templates, through /v1/messages as an app server would send it.
import { h, mount, errorText, templateRows } from '../common.js';
import { t, st } from './i18n.js';
import { MSG_FILTER } from './state.js';
import { v1 } from './api.js';
import { toast, section, field } from './dom.js';

/**
 * The send form: fields follow the chosen template's keys, prefilled with examples.
 * `sent(msgid)` runs after /v1/messages accepted one.
 */
export function sendForm(tmpls, sent) {
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
    await sent(r.data.msgid);
  };
  return section(t('newMessage'),
    h('form', { onsubmit: submit, test: 'send-form' },
      h('div.grid2', null, field(t('touser'), to), field(t('template'), which)),
      h('h4', null, t('data')), fields,
      h('div.grid2', null, field(t('page'), page), field(t('ttl'), ttl), field(t('sendAt'), sendAt), field(t('idemKey'), idem)),
      h('label.check', null, urgent, t('urgent')),
      h('div.row', null, h('button.btn.primary', { type: 'submit', test: 'send-submit' }, t('send')))));
}
