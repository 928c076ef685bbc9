// The analytics view (#/analytics): the funnel, rates and refused sends of /v1/stats for
// a time range, a bar chart of the series, and one funnel row per template.
import { h, mount, errorText, fmtTime, fmtPct, pad } from '../common.js';
import { t } from './i18n.js';
import { v1, templates } from './api.js';
import { section, table } from './dom.js';

const RANGES = { '24h': [24 * 3600, 'hour'], '7d': [7 * 86400, 'day'], '30d': [30 * 86400, 'day'] };
const A = { template: '', range: '24h' };

export async function viewAnalytics(el) {
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
      table([t('errcode'), t('meaning'), t('count')], refusedRows.map(([code, n]) => h('tr', { test: 'refused-row' },
        h('td.mono', null, code), h('td', { test: 'refused-meaning' }, meaning(code)), h('td.num', null, String(n)))))));
}

/** What a refusal's errcode means, in the console's language (the codes a send can get). */
function meaning(code) {
  const key = 'refusal' + code.replace(/[^0-9a-z_]/gi, '_');
  const text = t(key);
  return text === key ? '' : text;
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
    const text = rep.granularity === 'day' ? pad(d.getMonth() + 1) + '-' + pad(d.getDate()) : pad(d.getHours()) + ':00';
    svg.appendChild(h('text', { x: P.l + slot * i + slot / 2, y: H - 8, 'text-anchor': 'middle', class: 'axis' }, text));
  });
  const legend = h('div.legend', null, kinds.map(([, color, label]) => {
    const sw = h('i');
    sw.style.background = color;
    return h('span', null, sw, t(label));
  }));
  return h('div.chart-box', null, svg, legend);
}
