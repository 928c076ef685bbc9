// The SDK against a real `tuisong serve` (see server.js for the binary and the skip rule).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WS from 'ws';
import { TuisongDevice, MemoryStorage, TuisongError, backoffDelay, createDevice } from '../src/index.js';
import { binary, startServer, AppServer, until } from './server.js';

const found = binary();
const bin = found.bin;
const skip = found.skip || false;
let server;
let app;

before(async () => {
  if (skip) return;
  server = await startServer(bin);
  app = new AppServer(server);
});

// Every device a test made is closed after it, also when it failed, so no reconnect
// loop outlives the test (or the server).
const devices = new Set();
afterEach(() => {
  for (const d of devices) d.close();
  devices.clear();
});

after(() => {
  if (server) server.stop();
});

/** A TuisongDevice closed after the test. */
function device(opts) {
  const d = new TuisongDevice(opts);
  devices.add(d);
  return d;
}

/** A ws constructor that records every frame the server sent and every socket made. */
function spyingWebSocket() {
  const spy = { frames: [], sockets: [], sent: [] };
  class Spy extends WS {
    constructor(url) {
      super(url);
      spy.sockets.push(this);
      this.on('message', (d) => spy.frames.push(JSON.parse(String(d))));
    }
    send(data) {
      spy.sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  spy.WebSocket = Spy;
  return spy;
}

/** Resolves with the next `event` emitted by dev that passes `pred`. */
function next(dev, event, pred = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error('no ' + event + ' within ' + ms + ' ms')); }, ms);
    const off = dev.on(event, (v) => { if (pred(v)) { clearTimeout(t); off(); resolve(v); } });
  });
}

const oneTime = () => server.templates.find((t) => t.type === 2);

async function signedIn(nickname, opts = {}) {
  const dev = device({ baseUrl: server.base, WebSocket: WS, device: 'node-test', ...opts });
  const u = await dev.createUser(nickname);
  const { code, errMsg } = await dev.login(server.appid);
  assert.equal(errMsg, 'login:ok');
  const openid = await app.openid(code);
  return { dev, user: u, openid };
}

test('backoff is exponential, jittered and capped', () => {
  const o = { baseMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
  assert.equal(backoffDelay(0, o, () => 0), 50);
  assert.equal(backoffDelay(0, o, () => 1), 100);
  assert.equal(backoffDelay(3, o, () => 1), 800);
  assert.equal(backoffDelay(4, o, () => 1), 1000);
  assert.equal(backoffDelay(40, o, () => 0), 500);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(2, o);
    assert.ok(d >= 200 && d <= 400, String(d));
  }
  assert.ok(createDevice({ baseUrl: 'http://x' }) instanceof TuisongDevice);
});

test('sign in, subscribe, receive, ack: the server shows it delivered', { skip }, async () => {
  const { dev, user, openid } = await signedIn('小明');
  assert.match(user.device_token, /^dt_/);
  assert.equal(dev.token, user.device_token);

  // An existing token works too.
  const again = new TuisongDevice({ baseUrl: server.base, token: user.device_token });
  assert.equal((await again.login(server.appid)).errMsg, 'login:ok');

  const t = oneTime();
  const res = await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [t.id] });
  assert.deepEqual(res, { errMsg: 'requestSubscribeMessage:ok', [t.id]: 'accept' });
  const fail = await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [] });
  assert.equal(fail.errCode, 10001);
  assert.match(fail.errMsg, /^requestSubscribeMessage:fail/);
  const settings = await dev.getSettings(server.appid);
  assert.equal(settings.mainSwitch, true);
  assert.deepEqual(settings.itemSettings, {});

  const states = [];
  dev.on('state', (s) => states.push(s.state));
  const welcome = await dev.connect();
  assert.equal(welcome.user_id, user.user_id);
  assert.equal(welcome.cursor, 0);
  assert.equal(dev.state, 'online');

  const got = next(dev, 'message');
  const msgid = await app.send(openid, t.id);
  const m = await got;
  assert.equal(m.msgid, msgid);
  assert.equal(m.title, t.title);
  assert.equal(m.template_id, t.id);
  assert.equal(m.page, 'pages/order/detail?id=42');
  assert.ok(m.rows.length > 0 && m.rows[0].value.length > 0, JSON.stringify(m.rows));
  assert.equal(dev.cursor, m.seq);
  assert.equal(dev.messages.get(msgid).title, t.title);

  const delivered = await until('delivered', async () => {
    const s = await app.message(msgid);
    return s.status === 'delivered' ? s : undefined;
  });
  assert.equal(delivered.status, 'delivered');

  const opened = await dev.open(msgid);
  assert.deepEqual(opened, { msgid, appid: server.appid, page: 'pages/order/detail?id=42' });

  dev.close();
  assert.equal(dev.state, 'closed');
  assert.deepEqual(states.slice(0, 2), ['connecting', 'online']);
  assert.equal(states[states.length - 1], 'closed');
  // Closed: open and ack go over HTTP.
  assert.equal((await dev.open(msgid)).msgid, msgid);
  const ack = await dev.ack(msgid);
  assert.equal(ack.ok, true);
  assert.equal(ack.first_delivery, false);
  await assert.rejects(dev.open(999999), (e) => e instanceof TuisongError && e.status === 404);
});

test('autoAck off: the message stays accepted until ack()', { skip }, async () => {
  const { dev, openid } = await signedIn('小红', { autoAck: false });
  const t = oneTime();
  await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [t.id] });
  await dev.connect();
  const got = next(dev, 'message');
  const msgid = await app.send(openid, t.id);
  const m = await got;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await app.message(msgid)).status, 'accepted');
  await m.ack();
  await until('delivered', async () => (await app.message(msgid)).status === 'delivered');
  dev.close();
});

test('a reconnect resumes from the cursor without duplicates', { skip }, async () => {
  const spy = spyingWebSocket();
  const storage = new MemoryStorage();
  const { dev, openid } = await signedIn('小刚', { WebSocket: spy.WebSocket, storage, backoff: { baseMs: 50, maxMs: 200 } });
  const t = oneTime();
  await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [t.id] });
  await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [t.id] });
  await dev.connect();
  const received = [];
  dev.on('message', (m) => received.push(m.msgid));

  const first = await app.send(openid, t.id);
  await until('the first message', () => received.includes(first));
  const cursor = dev.cursor;
  assert.equal(storage.getItem('tuisong.cursor'), String(cursor));

  // Kill the socket (as a network failure would); send while the device is away.
  const offline = next(dev, 'state', (s) => s.state === 'offline');
  dev.reconnect();
  const st = await offline;
  assert.ok(st.delay >= 25 && st.delay <= 50, JSON.stringify(st));
  const framesBefore = spy.frames.length;
  const second = await app.send(openid, t.id);
  await until('the second message', () => received.includes(second));

  assert.deepEqual(received, [first, second]);
  assert.equal(spy.sockets.length, 2);
  const hellos = spy.sent.filter((f) => f.type === 'hello');
  assert.deepEqual(hellos.map((h) => h.cursor), [0, cursor]);
  // On the wire too: after the reconnect the server sent only what follows the cursor.
  const after = spy.frames.slice(framesBefore).filter((f) => f.type === 'message' || f.type === 'recall');
  assert.deepEqual(after.map((f) => f.msgid), [second]);
  dev.close();

  // A new device object on the same storage (an app restart) starts from the cursor.
  const spy2 = spyingWebSocket();
  const dev2 = device({ baseUrl: server.base, token: dev.token, WebSocket: spy2.WebSocket, storage });
  const w = await dev2.connect();
  assert.equal(w.cursor, dev.cursor);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(spy2.frames.filter((f) => f.type === 'message').map((f) => f.msgid), []);
  dev2.close();
});

test('a recall reaches the SDK and removes the card', { skip }, async () => {
  const { dev, openid } = await signedIn('小李');
  const t = oneTime();
  await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [t.id] });
  await dev.connect();
  const got = next(dev, 'message');
  const msgid = await app.send(openid, t.id);
  const m = await got;
  assert.ok(dev.messages.has(msgid));
  const recalled = next(dev, 'recall');
  await app.recall(msgid);
  const r = await recalled;
  assert.equal(r.msgid, msgid);
  assert.ok(r.seq > m.seq);
  assert.equal(r.card.title, t.title);
  assert.equal(dev.messages.has(msgid), false);
  assert.equal(dev.cursor, r.seq);
  dev.close();
});

test('backoff stops on a fatal close (1008) and on a refused token', { skip }, async () => {
  // A hello the server refuses: a cursor above 2^63 − 1 is answered with an error frame
  // and a 1008 close.
  const spy = { sockets: 0 };
  class BadHello extends WS {
    constructor(url) { super(url); spy.sockets++; }
    send(data) {
      const f = JSON.parse(data);
      super.send(f.type === 'hello' ? '{"type":"hello","cursor":10000000000000000000,"device":"bad"}' : data);
    }
  }
  const { dev } = await signedIn('小王', { WebSocket: BadHello, backoff: { baseMs: 20, maxMs: 50 } });
  const errors = [];
  dev.on('error', (e) => errors.push(e.message));
  const failed = next(dev, 'state', (s) => s.state === 'failed');
  await assert.rejects(dev.connect(), (e) => e instanceof TuisongError && e.status === 1008);
  const st = await failed;
  assert.equal(st.code, 1008);
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(spy.sockets, 1, 'no reconnect after 1008');
  assert.equal(dev.state, 'failed');
  assert.ok(errors.some((m) => /cursor must be at most/.test(m)), JSON.stringify(errors));

  // A token the server does not know: the upgrade is refused with 401.
  let made = 0;
  class Count extends WS { constructor(url) { super(url); made++; } }
  const bad = device({ baseUrl: server.base, token: 'dt_nope', WebSocket: Count, backoff: { baseMs: 20, maxMs: 50 } });
  await assert.rejects(bad.connect(), (e) => e instanceof TuisongError && e.status === 401);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(made, 1);
  assert.equal(bad.state, 'failed');
  await assert.rejects(bad.login(server.appid), (e) => e.status === 401 && e.code === 'unauthorized');
});

test('a server that goes away: reconnect with growing backoff until close()', { skip }, async () => {
  // Nothing listens on port 1: every attempt fails, none is fatal.
  const dev = device({ baseUrl: 'http://127.0.0.1:1', token: 'dt_x', WebSocket: WS, backoff: { baseMs: 20, maxMs: 80, jitter: 0 } });
  const delays = [];
  dev.on('error', () => {});
  dev.on('state', (s) => { if (s.state === 'offline') delays.push(s.delay); });
  const p = dev.connect();
  await until('four attempts', () => delays.length >= 4);
  dev.close();
  await assert.rejects(p, /closed/);
  assert.deepEqual(delays.slice(0, 4), [20, 40, 80, 80]);
  const n = delays.length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(delays.length, n, 'no attempt after close()');
  assert.equal(dev.state, 'closed');
});

test('settings, apps, inbox over HTTP and unsubscribe', { skip }, async () => {
  const { dev, openid } = await signedIn('小周');
  const t = oneTime();
  const { apps } = await dev.apps();
  assert.ok(apps.some((a) => a.appid === server.appid));
  const info = await dev.templates(server.appid);
  assert.ok(info.templates.some((x) => x.priTmplId === t.id));
  await dev.requestSubscribeMessage({ appid: server.appid, tmplIds: [t.id], keep: true });
  assert.deepEqual((await dev.getSettings(server.appid)).itemSettings, { [t.id]: 'accept' });
  const quiet = { start: '22:00', end: '08:00', utc_offset: '+08:00' };
  const s = await dev.updateSettings({ appid: server.appid, quietHours: quiet });
  assert.deepEqual(s.quietHours, quiet);
  await dev.updateSettings({ appid: server.appid, quietHours: null });
  const msgid = await app.send(openid, t.id);
  const page = await until('the inbox entry', async () => {
    const p = await dev.inbox({ cursor: 0 });
    return p.entries.length ? p : undefined;
  });
  assert.equal(page.entries[0].msgid, msgid);
  const un = await dev.unsubscribe(msgid);
  assert.deepEqual(un, { template_id: t.id, status: 'reject' });
  assert.equal((await dev.getSettings(server.appid)).itemSettings[t.id], 'reject');
});
