// The console's calls. The admin token calls /admin; for everything about one app the
// console asks /admin/apps/{appid}/console-token for an access token of its own kind and
// then calls the WeChat dialect (/wxaapi) and /v1 exactly as an app server would.
import { api, errorText } from '../common.js';
import { t } from './i18n.js';
import { S } from './state.js';

let sessionEnded = () => {};

/** What to do when /admin refuses the admin token (main.js signs out). */
export function onSessionEnded(f) {
  sessionEnded = f;
}

export async function admin(method, path, body) {
  const r = await api(method, path, { bearer: S.admin, body });
  if (r.status === 401) {
    sessionEnded(t('sessionEnded'));
  }
  return r;
}

export async function appToken(appid, force) {
  const c = S.tokens[appid];
  if (!force && c && c.until > Date.now()) return c.token;
  const r = await admin('POST', '/admin/apps/' + appid + '/console-token');
  if (!r.ok) throw new Error(errorText(r));
  S.tokens[appid] = { token: r.data.access_token, until: Date.now() + (r.data.expires_in - 120) * 1000 };
  return r.data.access_token;
}

/** /v1 with the app's console token; one retry with a fresh token on a token error. */
export async function v1(method, path, opts = {}) {
  for (let i = 0; i < 2; i++) {
    const token = await appToken(S.appid, i > 0);
    const r = await api(method, path, { ...opts, bearer: token });
    const code = r.data && r.data.error && r.data.error.code;
    if (r.status === 401 && (code === 'token_expired' || code === 'invalid_token') && i === 0) continue;
    return r;
  }
  return null;
}

/** The WeChat dialect with ?access_token=; one retry on a token errcode. */
export async function wx(method, path, opts = {}) {
  for (let i = 0; i < 2; i++) {
    const token = await appToken(S.appid, i > 0);
    const r = await api(method, path, { ...opts, query: { ...(opts.query || {}), access_token: token } });
    const code = r.data && r.data.errcode;
    if ([40001, 42001, 41001, 40014].includes(code) && i === 0) continue;
    return r;
  }
  return null;
}

export const wxOk = (r) => r && r.ok && r.data && r.data.errcode === 0;

export async function templates() {
  const r = await wx('GET', '/wxaapi/newtmpl/gettemplate');
  if (!wxOk(r)) throw new Error(errorText(r));
  return r.data.data;
}
