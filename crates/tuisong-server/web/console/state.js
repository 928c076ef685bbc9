// What the console remembers while the tab is open: the admin token and the chosen app
// (both in sessionStorage), the apps, the apps' console tokens, the message filter, and
// the view named by the location hash.

export const S = {
  admin: sessionStorage.getItem('tuisong.admin') || '',
  apps: [],
  appid: sessionStorage.getItem('tuisong.appid') || '',
  tokens: {}, // appid → {token, until}
};

/** The message list's filter; the ledger's "messages to this user" link sets touser. */
export const MSG_FILTER = { status: '', template_id: '', touser: '' };

/** The views, in the side navigation's order: hash name and label key. */
export const NAV = [
  ['apps', 'navApps'], ['templates', 'navTemplates'], ['users', 'navUsers'],
  ['messages', 'navMessages'], ['analytics', 'navAnalytics'], ['policy', 'navPolicy'],
];

/** `#/view/arg` as {view, arg}; an unknown view is the apps list. */
export function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const view = NAV.some(([k]) => k === parts[0]) ? parts[0] : 'apps';
  return { view, arg: parts[1] || '' };
}
