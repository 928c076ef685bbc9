// The console's own building blocks on top of common.js's h(): toasts, panels, form
// fields, badges and tables.
import { h } from '../common.js';
import { t, st } from './i18n.js';
import { S } from './state.js';

export function toast(text, kind) {
  const box = document.getElementById('toasts');
  const el = h('div.toast', { test: 'toast', class: kind || 'info' }, text);
  box.appendChild(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

export const section = (title, ...children) => h('section.panel', null, title ? h('h2', null, title) : null, ...children);
export const field = (label, input, hint) => h('label.field', null, h('span', null, label), input, hint ? h('small.muted', null, hint) : null);
export const kindLabel = (type) => (type === 3 ? t('longTerm') : t('oneTime'));
export const badge = (text, cls, test) => h('span.badge', { class: cls, test }, text);
export const statusBadge = (s) => badge(st(s), 'st-' + s, 'message-status');
export const appName = () => (S.apps.find((a) => a.appid === S.appid) || {}).name || '';
export const table = (heads, rows, test) => h('div.table-wrap', null,
  h('table', { test }, h('thead', null, h('tr', null, heads.map((x) => h('th', null, x)))),
    rows instanceof Node && rows.tagName === 'TBODY' ? rows : h('tbody', null, rows)));
