// The policy view (#/policy): the app's caps, quiet hours and urgent budget.
import { h, mount, errorText } from '../common.js';
import { t } from './i18n.js';
import { v1 } from './api.js';
import { toast, section } from './dom.js';

export async function viewPolicy(el) {
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
