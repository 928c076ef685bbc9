// The real `tuisong serve` for the SDK tests: spawned on a temp data dir and a free port,
// the demo app parsed from its first-start banner, and the app server's side of the API
// (access token, templates, send, message status, recall).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir = path.resolve(here, '..');

/** The binary to test, and why the tests should skip (null: run them). */
export function binary() {
  const bin = path.resolve(sdkDir, process.env.TUISONG_BIN || '../../target/debug/tuisong');
  if (existsSync(bin)) return { bin, skip: null };
  const why = `no tuisong binary at ${bin} (build it with \`cargo build -p tuisong\` or set TUISONG_BIN)`;
  if (process.env.TUISONG_TEST_SDK === '1') throw new Error(why + '; TUISONG_TEST_SDK=1 requires it');
  console.log('skipping the SDK tests: ' + why);
  return { bin, skip: why };
}

export async function startServer(bin) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tuisong-sdk-'));
  const env = { ...process.env, TUISONG_LOG: 'warn' };
  for (const k of ['TUISONG_LISTEN', 'TUISONG_DATA_DIR', 'TUISONG_ADMIN_TOKEN', 'TUISONG_DEMO_APP', 'TUISONG_SERVER', 'TUISONG_USER_TOKEN']) delete env[k];
  const child = spawn(bin, ['serve', '--data-dir', dir, '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const banner = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no banner within 20 s:\n' + out + '\n' + err)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('README.md walks through')) { clearTimeout(t); resolve(out); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error('tuisong exited ' + code + ':\n' + out + '\n' + err)); });
  });
  const field = (name) => {
    const line = banner.split('\n').map((l) => l.trim()).find((l) => l.startsWith(name));
    if (!line) throw new Error(name + ' not in the banner:\n' + banner);
    return line.slice(name.length).trim();
  };
  const base = /tuisong listening on (\S+)/.exec(banner)[1];
  const templates = banner.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('template:')).map((l) => {
    const m = /^template:\s+(\S+)\s+(.*) \(type (\d)\)$/.exec(l);
    return { id: m[1], title: m[2], type: Number(m[3]) };
  });
  const server = {
    base, dir, child, templates,
    appid: field('appid:'),
    secret: field('secret:'),
    stop() {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** The app server's side, with the demo app's credentials. */
export class AppServer {
  constructor(server) {
    this.s = server;
    this.token = null;
  }

  async json(method, p, body, bearer) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    const r = await fetch(this.s.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let data;
    try { data = JSON.parse(text); } catch (_) { data = text; }
    return { status: r.status, data };
  }

  async accessToken() {
    if (this.token) return this.token;
    const { data } = await this.json('GET', `/cgi-bin/token?grant_type=client_credential&appid=${this.s.appid}&secret=${this.s.secret}`);
    if (!data.access_token) throw new Error('token: ' + JSON.stringify(data));
    this.token = data.access_token;
    return this.token;
  }

  async openid(code) {
    const { data } = await this.json('GET', `/sns/jscode2session?appid=${this.s.appid}&secret=${this.s.secret}&js_code=${code}&grant_type=authorization_code`);
    if (!data.openid) throw new Error('jscode2session: ' + JSON.stringify(data));
    return data.openid;
  }

  /** The template's example data, as `data` of a send: {key: {value}}. */
  async exampleData(templateId) {
    const { data } = await this.json('GET', '/wxaapi/newtmpl/gettemplate?access_token=' + await this.accessToken());
    const t = data.data.find((x) => x.priTmplId === templateId);
    if (!t) throw new Error('no template ' + templateId + ' in ' + JSON.stringify(data));
    const keys = t.content.split('\n').filter(Boolean).map((l) => /\{\{(\w+)\.DATA\}\}/.exec(l)[1]);
    const values = t.example.split('\n').filter(Boolean).map((l) => l.slice(l.indexOf(':') + 1));
    return Object.fromEntries(keys.map((k, i) => [k, { value: values[i] }]));
  }

  /** `/cgi-bin/message/subscribe/send`; resolves to the msgid. */
  async send(openid, templateId, page = 'pages/order/detail?id=42') {
    const body = { touser: openid, template_id: templateId, page, data: await this.exampleData(templateId) };
    const { data } = await this.json('POST', '/cgi-bin/message/subscribe/send?access_token=' + await this.accessToken(), body);
    if (data.errcode !== 0) throw new Error('send: ' + JSON.stringify(data));
    return data.msgid;
  }

  async message(msgid) {
    const { status, data } = await this.json('GET', '/v1/messages/' + msgid, undefined, await this.accessToken());
    if (status !== 200) throw new Error('message ' + msgid + ': ' + JSON.stringify(data));
    return data;
  }

  async recall(msgid) {
    const { status, data } = await this.json('POST', '/v1/messages/' + msgid + '/recall', {}, await this.accessToken());
    if (status !== 200) throw new Error('recall ' + msgid + ': ' + JSON.stringify(data));
    return data;
  }
}

/** Resolves with the first value `f` returns that is not undefined; rejects after `ms`. */
export async function until(what, f, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > end) throw new Error(what + ': not within ' + ms + ' ms');
    await new Promise((r) => setTimeout(r, 25));
  }
}
