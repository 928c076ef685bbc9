"""tuisong's message push (消息推送) received by a developer server built on wechatpy.

A small threaded HTTP server in this process plays the app's receiving server. It does
what a wechatpy-based receiver does and nothing more:

- GET (the handshake): ``wechatpy.utils.check_signature`` over token/timestamp/nonce,
  then it answers the raw ``echostr``;
- POST: ``check_signature`` again; in compatible and safe mode
  ``wechatpy.crypto.WeChatCrypto(token, encoding_aes_key, appid).decrypt_message``, which
  verifies ``msg_signature`` over [token, timestamp, nonce, Encrypt], decrypts, and raises
  ``InvalidAppIdException`` unless the appid inside is the demo app's. ``decrypt_message``
  takes a dict as well as XML text, so JSON bodies go through the very same call with
  ``json.loads(body)``. Then it answers ``success``.

Every delivery is recorded, and the tests read the events from that record: XML through
``wechatpy.parse_message`` (which maps the three names to SubscribeMsgPopupEvent,
SubscribeMsgChangeEvent and SubscribeMsgSentEvent), JSON through ``json.loads`` with the
typing rules of shared/spec/wechat-api.md §8.4. Expectations follow §7 and §8.
"""

import base64
import dataclasses
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import SubscribeMsgChangeEvent, SubscribeMsgPopupEvent, SubscribeMsgSentEvent
from wechatpy.utils import check_signature

from test_wechatpy import Device, User, example_data, private_templates

POPUP = "subscribe_msg_popup_event"
CHANGE = "subscribe_msg_change_event"
SENT = "subscribe_msg_sent_event"
EVENT_CLASSES = {POPUP: SubscribeMsgPopupEvent, CHANGE: SubscribeMsgChangeEvent, SENT: SubscribeMsgSentEvent}
WRAPPERS = {POPUP: "SubscribeMsgPopupEvent", CHANGE: "SubscribeMsgChangeEvent", SENT: "SubscribeMsgSentEvent"}
WAIT = 10.0

FORMATS = ("xml", "json")
MODES = ("plaintext", "compatible", "safe")
COMBOS = [pytest.param(f, m, id=f"{f}-{m}") for f in FORMATS for m in MODES]


# ----------------------------------------------------------------------------- the receiver


@dataclasses.dataclass(frozen=True)
class PushConfig:
    token: str
    encoding_aes_key: str
    format: str
    mode: str


@dataclasses.dataclass
class Handshake:
    query: dict
    error: str  # None when the signature checked out and echostr was echoed


@dataclasses.dataclass
class Delivery:
    """One POST as the receiver saw it, verified against the config in force."""

    config: PushConfig
    query: dict
    content_type: str
    body: str  # as received
    plain: str  # the event document: the body in plaintext mode, else what decrypt_message gave
    doc: dict  # plain, parsed (json.loads, or xmltodict's <xml> content)
    openid: str  # the event's FromUserName (or, if that could not be read, the query's openid)
    event: str
    error: str  # None when every wechatpy check passed


def _single(query_string):
    q = parse_qs(query_string, keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in q.items()}


def _parse(fmt, text):
    if fmt == "xml":
        return xmltodict.parse(text)["xml"]
    return json.loads(text)


class Receiver:
    """The developer server. `configure` sets what it expects (as the developer would on
    the WeChat admin page); every request is checked against that and recorded."""

    def __init__(self, appid):
        self.appid = appid
        self.config = None
        self.handshakes = []
        self.deliveries = []
        self.cond = threading.Condition()

    def configure(self, config):
        with self.cond:
            self.config = config

    def mark(self):
        with self.cond:
            return len(self.deliveries), len(self.handshakes)

    def on_get(self, query):
        with self.cond:
            cfg = self.config
        error = None
        try:
            check_signature(cfg.token, query.get("signature", ""), query.get("timestamp", ""), query.get("nonce", ""))
        except Exception as e:  # noqa: BLE001 - whatever wechatpy raises is a failed check
            error = f"check_signature: {type(e).__name__}: {e}"
        with self.cond:
            self.handshakes.append(Handshake(query, error))
            self.cond.notify_all()
        if error:
            return 403, "bad signature"
        return 200, query.get("echostr", "")

    def on_post(self, query, content_type, body):
        with self.cond:
            cfg = self.config
        plain = doc = openid = event = error = None
        try:
            step = "check_signature"
            check_signature(cfg.token, query["signature"], query["timestamp"], query["nonce"])
            if cfg.mode == "plaintext":
                plain = body
            else:
                step = "WeChatCrypto.decrypt_message"
                crypto = WeChatCrypto(cfg.token, cfg.encoding_aes_key, self.appid)
                msg = body if cfg.format == "xml" else json.loads(body)
                plain = crypto.decrypt_message(msg, query["msg_signature"], query["timestamp"], query["nonce"])
            step = f"parsing the {cfg.format} event"
            doc = _parse(cfg.format, plain)
            openid, event = doc["FromUserName"], doc["Event"]
        except Exception as e:  # noqa: BLE001
            error = f"{step}: {type(e).__name__}: {e}"
            # Attribute the failure to a user where possible, so that test can report it.
            openid = query.get("openid")
            if openid is None:
                try:
                    openid = _parse(cfg.format, body).get("FromUserName")
                except Exception:  # noqa: BLE001
                    pass
        d = Delivery(cfg, query, content_type, body, plain, doc, openid, event, error)
        with self.cond:
            self.deliveries.append(d)
            self.cond.notify_all()
        if error:
            return 403, error
        return 200, "success"

    def wait(self, openid, event, since, timeout=WAIT):
        """The first `event` delivery for `openid` recorded after `since`; fails at once
        on a delivery for this user (or for nobody known) that failed wechatpy's checks."""
        start = since[0]
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for d in self.deliveries[start:]:
                    if d.error and d.openid in (openid, None):
                        pytest.fail(
                            f"a push failed the receiver's wechatpy checks: {d.error}\n"
                            f"  config {d.config}\n  query {d.query}\n  Content-Type {d.content_type!r}\n"
                            f"  body {d.body!r}",
                            pytrace=False,
                        )
                    if d.openid == openid and d.event == event:
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(d.event, d.error) for d in self.deliveries[start:] if d.openid == openid]
                    pytest.fail(f"no {event} for {openid} within {timeout:.0f} s; its deliveries: {seen}",
                                pytrace=False)
                self.cond.wait(min(left, 0.2))

    def handshakes_since(self, since):
        with self.cond:
            return list(self.handshakes[since[1]:])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, text):
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer(*self.server.receiver.on_get(_single(urlsplit(self.path).query)))

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8")
        query = _single(urlsplit(self.path).query)
        self._answer(*self.server.receiver.on_post(query, self.headers.get("Content-Type", ""), body))


@pytest.fixture(scope="module")
def receiver(server):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.receiver = Receiver(server.appid)
    httpd.receiver.url = f"http://127.0.0.1:{httpd.server_address[1]}/wx/push"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.receiver
    # Stop pushing to a receiver that is about to go away (the other tests queue events).
    token = requests.get(
        f"{server.base_url}/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": server.appid, "secret": server.secret},
        timeout=10,
    ).json()["access_token"]
    requests.delete(f"{server.base_url}/v1/push-config", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    httpd.shutdown()
    httpd.server_close()


def new_config(fmt, mode):
    key = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    assert len(key) == 43
    return PushConfig(token="tok" + secrets.token_hex(8), encoding_aes_key=key, format=fmt, mode=mode)


def put_push_config(server, client, url, cfg):
    return requests.put(
        f"{server.base_url}/v1/push-config",
        json={
            "url": url,
            "token": cfg.token,
            "encoding_aes_key": cfg.encoding_aes_key,
            "format": cfg.format,
            "mode": cfg.mode,
            "extension_events": False,
        },
        headers={"Authorization": f"Bearer {client.access_token}"},
        timeout=15,
    )


@pytest.fixture
def push(server, client, receiver):
    """push(fmt, mode): a fresh token and AES key, saved with PUT /v1/push-config; checks
    the WeChat handshake the save performs."""

    def configure(fmt, mode):
        cfg = new_config(fmt, mode)
        receiver.configure(cfg)
        since = receiver.mark()
        r = put_push_config(server, client, receiver.url, cfg)
        assert r.status_code == 200, f"PUT /v1/push-config: HTTP {r.status_code} {r.text}"
        body = r.json()
        assert body["format"] == fmt and body["mode"] == mode and body["url"] == receiver.url, body
        shakes = receiver.handshakes_since(since)
        assert len(shakes) == 1, shakes
        h = shakes[0]
        assert h.error is None, h
        # §7.2: signature/timestamp/nonce/echostr only, never encrypt_type or msg_signature
        assert set(h.query) == {"signature", "timestamp", "nonce", "echostr"}, h.query
        assert h.query["echostr"] and h.query["nonce"], h.query
        return cfg

    return configure


@pytest.fixture
def new_user(server, client):
    """new_user() -> a fresh user who has opened the demo mini program."""

    def make():
        device = Device(server)
        return User(device, client.wxa.code_to_session(device.login())["openid"])

    return make


def device_call(server, user, method, path, body=None):
    r = requests.request(
        method,
        f"{server.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {user.device.token}"},
        timeout=10,
    )
    assert r.status_code == 200, f"{method} {path}: HTTP {r.status_code} {r.text}"
    return r.json()


def app_call(server, client, method, path, body=None):
    r = requests.request(
        method,
        f"{server.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {client.access_token}"},
        timeout=10,
    )
    assert r.status_code == 200, f"{method} {path}: HTTP {r.status_code} {r.text}"
    return r.json()


def two_of_a_type(server):
    """Two demo templates of the same type (one prompt may not mix types, §6.1)."""
    for t in server.templates:
        same = [u.id for u in server.templates if u.type == t.type]
        if len(same) >= 2:
            return same[0], same[1]
    pytest.fail(f"the banner lists no two demo templates of the same type: {server.templates}")


def send_one(server, client, user, tid):
    """The user accepts tid in a prompt, the app sends it through wechatpy: the msgid."""
    user.device.subscribe({tid: "accept"})
    data = example_data(private_templates(client)[tid])
    result = client.wxa.send_subscribe_message(user.openid, tid, data)
    assert result["errcode"] == 0, result
    return result["msgid"]


# ----------------------------------------------------------------------------- reading events


@dataclasses.dataclass
class Event:
    name: str
    openid: str
    create_time: int
    items: list  # the List entries, every value as text ("0", not 0)
    list_value: object  # the List as the document had it (JSON: object or array; XML: xmltodict's)
    message: object  # XML: what wechatpy.parse_message returned


def check_envelope(d, server):
    """§7.3: the query, Content-Type and body shape of the configured format and mode."""
    cfg = d.config
    q = d.query
    if cfg.mode == "plaintext":
        assert set(q) == {"signature", "timestamp", "nonce"}, q
    else:
        assert set(q) == {"signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature"}, q
        assert q["encrypt_type"] == "aes", q
        assert q["openid"] == d.openid, q
    assert q["timestamp"].isdigit() and abs(int(q["timestamp"]) - time.time()) < 300, q
    assert q["nonce"], q
    want_type = "text/xml" if cfg.format == "xml" else "application/json"
    assert d.content_type.split(";")[0].strip().lower() == want_type, d.content_type

    outer = _parse(cfg.format, d.body)
    if cfg.mode == "plaintext":
        assert "Encrypt" not in outer, d.body
        assert d.plain == d.body
    elif cfg.mode == "safe":
        # ciphertext only
        assert list(outer) == ["ToUserName", "Encrypt"], d.body
        assert outer["ToUserName"] == server.original_id, d.body
    else:
        # the plaintext fields plus Encrypt, and the plaintext is what was encrypted
        assert "Encrypt" in outer, d.body
        rest = {k: v for k, v in outer.items() if k != "Encrypt"}
        assert rest == d.doc, f"compatible body {d.body!r} differs from its decrypted event {d.plain!r}"
        if cfg.format == "xml":
            # a receiver that ignores Encrypt reads the same event
            assert type(parse_message(d.body)) is type(parse_message(d.plain))


def read_event(d, server, name):
    """The event of a delivery, read the way a wechatpy receiver reads it, with the
    common fields (§8) and the JSON typing rules (§8.4) checked."""
    assert d.error is None, d.error
    check_envelope(d, server)
    if d.config.format == "xml":
        msg = parse_message(d.plain)
        assert isinstance(msg, EVENT_CLASSES[name]), f"parse_message gave {type(msg).__name__}: {d.plain}"
        assert msg.type == "event" and msg.event == name
        assert msg.source == d.openid
        assert msg.target == server.original_id
        create_time = msg.time
        items = msg.subscribes
        for item in items:
            assert all(isinstance(v, str) for v in item.values()), item
        list_value = d.doc[WRAPPERS[name]]["List"]
    else:
        doc = d.doc
        msg = None
        assert doc["ToUserName"] == server.original_id, doc
        assert doc["FromUserName"] == d.openid, doc
        assert doc["MsgType"] == "event" and doc["Event"] == name, doc
        assert type(doc["CreateTime"]) is int, f"CreateTime must be a JSON integer: {d.plain}"
        create_time = doc["CreateTime"]
        assert WRAPPERS[name] not in doc, doc
        list_value = doc["List"]
        # one item: the object itself; several: an array
        if isinstance(list_value, list):
            assert len(list_value) > 1, f"a single item must be sent as an object, not an array: {d.plain}"
            raw = list_value
        else:
            assert isinstance(list_value, dict), d.plain
            raw = [list_value]
        for item in raw:
            for k, v in item.items():
                if k == "ErrorCode":
                    assert type(v) is int, f"ErrorCode must be a JSON integer: {d.plain}"
                else:
                    assert isinstance(v, str), f"{k} must be a JSON string: {d.plain}"
        items = [{k: str(v) for k, v in item.items()} for item in raw]
    assert abs(create_time - time.time()) < 300, create_time
    return Event(name, d.openid, create_time, items, list_value, msg)


def expect_event(receiver, server, user, name, since):
    return read_event(receiver.wait(user.openid, name, since), server, name)


# ----------------------------------------------------------------------------- the handshake


def test_saving_a_config_is_refused_with_400_when_the_receiver_does_not_echo(server, client, receiver, push):
    push("xml", "safe")  # a good config is in place
    good = receiver.config
    wrong = new_config("json", "safe")
    since = receiver.mark()
    # the receiver still expects the old token, so the handshake's signature fails there
    r = put_push_config(server, client, receiver.url, wrong)
    assert r.status_code == 400, f"expected HTTP 400, got {r.status_code} {r.text}"
    shakes = receiver.handshakes_since(since)
    assert len(shakes) == 1 and shakes[0].error, shakes
    # the previous config stays in force
    got = app_call(server, client, "GET", "/v1/push-config")
    assert got["format"] == good.format and got["mode"] == good.mode, got


# ----------------------------------------------------------------------------- subscribe_msg_popup_event


@pytest.mark.parametrize("fmt,mode", COMBOS)
def test_popup_event_with_one_template(server, receiver, push, new_user, fmt, mode):
    push(fmt, mode)
    user = new_user()
    tid = server.template(2).id
    since = receiver.mark()
    user.device.subscribe({tid: "accept"})
    ev = expect_event(receiver, server, user, POPUP, since)
    assert ev.items == [{"TemplateId": tid, "SubscribeStatusString": "accept", "PopupScene": "0"}]
    # JSON: the object itself, not a one-element array; XML: a single <List> element
    assert isinstance(ev.list_value, dict), ev.list_value


@pytest.mark.parametrize("fmt,mode", COMBOS)
def test_popup_event_with_two_templates(server, receiver, push, new_user, fmt, mode):
    push(fmt, mode)
    user = new_user()
    a, b = two_of_a_type(server)
    since = receiver.mark()
    user.device.subscribe({a: "accept", b: "reject"})
    ev = expect_event(receiver, server, user, POPUP, since)
    assert isinstance(ev.list_value, list) and len(ev.list_value) == 2, ev.list_value
    assert sorted(ev.items, key=lambda i: i["TemplateId"]) == sorted(
        [
            {"TemplateId": a, "SubscribeStatusString": "accept", "PopupScene": "0"},
            {"TemplateId": b, "SubscribeStatusString": "reject", "PopupScene": "0"},
        ],
        key=lambda i: i["TemplateId"],
    )


# ----------------------------------------------------------------------------- subscribe_msg_sent_event


@pytest.mark.parametrize("fmt,mode", COMBOS)
def test_sent_event_with_error_code_0_after_the_device_acknowledges(server, client, receiver, push, new_user, fmt, mode):
    push(fmt, mode)
    user = new_user()
    tid = server.template(2).id
    since = receiver.mark()
    msgid = send_one(server, client, user, tid)
    ack = device_call(server, user, "POST", f"/client/v1/messages/{msgid}/ack")
    assert ack.get("ok") is True, ack
    ev = expect_event(receiver, server, user, SENT, since)
    assert ev.items == [{"TemplateId": tid, "MsgID": str(msgid), "ErrorCode": "0", "ErrorStatus": "success"}]
    assert isinstance(ev.list_value, dict)
    if fmt == "xml":
        assert ev.message.subscribes[0]["MsgID"] == str(msgid)


@pytest.mark.parametrize("fmt,mode", [pytest.param("xml", "compatible", id="xml-compatible"),
                                      pytest.param("json", "safe", id="json-safe")])
def test_sent_event_with_error_code_1002_after_a_cancel_before_delivery(server, client, receiver, push, new_user,
                                                                       fmt, mode):
    push(fmt, mode)
    user = new_user()
    tid = server.template(2).id
    since = receiver.mark()
    msgid = send_one(server, client, user, tid)
    app_call(server, client, "POST", f"/v1/messages/{msgid}/cancel")
    ev = expect_event(receiver, server, user, SENT, since)
    assert ev.items == [{"TemplateId": tid, "MsgID": str(msgid), "ErrorCode": "1002", "ErrorStatus": "cancelled"}]


@pytest.mark.parametrize("fmt,mode", [pytest.param("json", "plaintext", id="json-plaintext"),
                                      pytest.param("xml", "safe", id="xml-safe")])
def test_sent_event_with_error_code_1003_after_a_recall_before_delivery(server, client, receiver, push, new_user,
                                                                       fmt, mode):
    push(fmt, mode)
    user = new_user()
    tid = server.template(2).id
    since = receiver.mark()
    msgid = send_one(server, client, user, tid)
    app_call(server, client, "POST", f"/v1/messages/{msgid}/recall")
    ev = expect_event(receiver, server, user, SENT, since)
    assert ev.items == [{"TemplateId": tid, "MsgID": str(msgid), "ErrorCode": "1003", "ErrorStatus": "recalled"}]


def test_sent_event_with_error_code_1001_when_the_ttl_passes_before_delivery(server, client, receiver, push,
                                                                            new_user):
    push("json", "compatible")
    user = new_user()
    tid = server.template(2).id
    user.device.subscribe({tid: "accept"})
    data = example_data(private_templates(client)[tid])
    since = receiver.mark()
    sent = app_call(server, client, "POST", "/v1/messages",
                    {"touser": user.openid, "template_id": tid, "data": data, "ttl_seconds": 1})
    msgid = int(sent["msgid"])
    ev = expect_event(receiver, server, user, SENT, since)
    assert ev.items == [{"TemplateId": tid, "MsgID": str(msgid), "ErrorCode": "1001", "ErrorStatus": "expired"}]


# ----------------------------------------------------------------------------- subscribe_msg_change_event


@pytest.mark.parametrize("fmt,mode", COMBOS)
def test_change_event_when_the_user_turns_a_template_off(server, receiver, push, new_user, fmt, mode):
    push(fmt, mode)
    user = new_user()
    tid = server.template(3).id
    user.device.subscribe({tid: "accept"})
    since = receiver.mark()
    settings = device_call(server, user, "PUT", "/client/v1/settings",
                           {"appid": server.appid, "itemSettings": {tid: "reject"}})
    assert settings["itemSettings"].get(tid) == "reject", settings
    ev = expect_event(receiver, server, user, CHANGE, since)
    assert ev.items == [{"TemplateId": tid, "SubscribeStatusString": "reject"}]
    assert isinstance(ev.list_value, dict)
