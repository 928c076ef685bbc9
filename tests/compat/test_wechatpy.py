"""tuisong driven by the real wechatpy SDK (2.0.0a26), with only the host changed.

Every WeChat call goes through wechatpy's own request/response/error handling; the
device side (sign-in, wx.login, wx.requestSubscribeMessage) and the /v1 consent ledger
are tuisong's own JSON APIs and use plain requests. The expectations follow
shared/spec/wechat-api.md sections 0-5.
"""

import base64
import json
import re
import time
from pathlib import Path

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from conftest import REPO_ROOT, point_at

WX = "https://api.weixin.qq.com"
LIBRARY = json.loads((REPO_ROOT / "crates" / "tuisong-core" / "data" / "library.json").read_text("utf-8"))
PLACEHOLDER = re.compile(r"\{\{(\w+)\.DATA\}\}")
MADE_UP_OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
MADE_UP_TEMPLATE = "9Aw5ZV1j9xdWTFEkqCpZ7jWySL7aGN6rQom4gXINfJs"


# ----------------------------------------------------------------------------- helpers


def expect_errcode(code, fn, *args, **kwargs):
    """Calls fn, expects wechatpy to raise WeChatClientException with this errcode."""
    with pytest.raises(WeChatClientException) as info:
        result = fn(*args, **kwargs)
        pytest.fail(f"expected errcode {code}, the call succeeded with {result!r}")
    e = info.value
    if e.errcode != code:
        resp = e.response
        detail = f"HTTP {resp.status_code} {resp.text!r}" if resp is not None else "no response"
        pytest.fail(f"expected errcode {code}, got errcode {e.errcode} errmsg {e.errmsg!r} ({detail})")
    return e


class Device:
    """One simulated WeChat user on a phone (tuisong's /client/v1 API)."""

    def __init__(self, server, nickname="兼容测试用户"):
        self.server = server
        r = requests.post(f"{server.base_url}/client/v1/users", json={"nickname": nickname}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["nickname"] == nickname
        self.user_id = body["user_id"]
        self.token = body["device_token"]

    def _post(self, path, body):
        r = requests.post(
            f"{self.server.base_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert r.status_code == 200, f"{path}: HTTP {r.status_code} {r.text}"
        return r.json()

    def login(self):
        """wx.login(): a one-time code for code2session."""
        body = self._post("/client/v1/login", {"appid": self.server.appid})
        assert isinstance(body.get("code"), str) and body["code"], body
        return body["code"]

    def subscribe(self, decisions, keep=False):
        """wx.requestSubscribeMessage() with the user's choice per template id."""
        body = self._post(
            "/client/v1/subscribe",
            {"appid": self.server.appid, "tmplIds": list(decisions), "decisions": decisions, "keep": keep},
        )
        assert body.get("errMsg") == "requestSubscribeMessage:ok", body
        for tid, d in decisions.items():
            assert body.get(tid) == d, body
        return body


class User:
    def __init__(self, device, openid):
        self.device = device
        self.openid = openid


@pytest.fixture
def user(server, client):
    """A fresh user who has opened the demo mini program (so it has an openid)."""
    device = Device(server)
    session = client.wxa.code_to_session(device.login())
    return User(device, session["openid"])


def consents(server, client, openid):
    r = requests.get(
        f"{server.base_url}/v1/consents/{openid}",
        headers={"Authorization": f"Bearer {client.access_token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def consent_of(server, client, openid, template_id):
    body = consents(server, client, openid)
    assert body["openid"] == openid
    for t in body["templates"]:
        if t["template_id"] == template_id:
            return t
    pytest.fail(f"/v1/consents/{openid} has no entry for {template_id}: {body}")


def private_templates(client):
    return {t["priTmplId"]: t for t in client.template.get_subscribe_message_templates()}


def example_data(template):
    """Valid send data for a gettemplate entry: its keys with its example values."""
    data = {}
    content = [l for l in template["content"].split("\n") if l]
    example = [l for l in template["example"].split("\n") if l]
    assert len(content) == len(example), template
    for c, x in zip(content, example):
        m = PLACEHOLDER.search(c)
        assert m, f"no {{{{key.DATA}}}} in content line {c!r}"
        value = re.split(r"[:：]", x, maxsplit=1)[1]
        data[m.group(1)] = {"value": value}
    return data


def first_key(data, prefix):
    for k in data:
        if re.fullmatch(rf"{prefix}\d+", k):
            return k
    pytest.fail(f"no {prefix}N key in {sorted(data)}")


@pytest.fixture
def one_time(server, client):
    """The demo one-time (type 2) template as gettemplate lists it, with valid data."""
    t = private_templates(client)[server.template(2).id]
    return t, example_data(t)


@pytest.fixture
def long_term(server, client):
    t = private_templates(client)[server.template(3).id]
    return t, example_data(t)


def stable_token(session, **body):
    full = {"grant_type": "client_credential", "force_refresh": False}
    full.update(body)
    r = session.post(f"{WX}/cgi-bin/stable_token", json=full, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def library_template(tid):
    for t in LIBRARY["templates"]:
        if t["tid"] == tid:
            return t
    raise LookupError(tid)


# ----------------------------------------------------------------------------- 1. access token


def test_fetch_access_token_gives_a_token_valid_for_7200_seconds(client):
    result = client.fetch_access_token()
    assert isinstance(result["access_token"], str) and result["access_token"]
    assert result["expires_in"] == 7200
    assert "errcode" not in result or result["errcode"] == 0
    assert client.access_token == result["access_token"]


def test_fetch_access_token_with_a_wrong_secret_raises_40125(make_client):
    c = make_client(secret="0" * 32)
    expect_errcode(40125, c.fetch_access_token)


def test_fetch_access_token_with_an_unknown_appid_raises_40013(make_client):
    c = make_client(appid="wx0000000000000000")
    expect_errcode(40013, c.fetch_access_token)


def test_a_refetched_token_leaves_the_previous_one_working(make_client):
    c = make_client()
    old = c.fetch_access_token()["access_token"]
    new = c.fetch_access_token()["access_token"]
    assert new != old
    # the previous token stays valid for 5 minutes after a new one is issued
    holder = make_client(access_token=old, auto_retry=False)
    assert isinstance(holder.template.get_category(), list)


# ----------------------------------------------------------------------------- 2. stable token


def test_stable_token_returns_the_same_token_while_it_is_valid(client):
    a = stable_token(client._http, appid=client.appid, secret=client.secret)
    b = stable_token(client._http, appid=client.appid, secret=client.secret)
    assert isinstance(a.get("access_token"), str) and a["access_token"], a
    assert b["access_token"] == a["access_token"]
    assert 300 < a["expires_in"] <= 7200
    assert 300 < b["expires_in"] <= a["expires_in"]


def test_stable_token_rejects_get_with_43002(client):
    r = client._http.get(
        f"{WX}/cgi-bin/stable_token",
        params={"grant_type": "client_credential", "appid": client.appid, "secret": client.secret},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json()["errcode"] == 43002, r.text


def test_stable_token_with_a_wrong_secret_gets_40125(client):
    body = stable_token(client._http, appid=client.appid, secret="0" * 32)
    assert body.get("errcode") == 40125, body


@pytest.fixture(scope="module")
def stable_rotation(server):
    """A stable token, then a force_refresh more than 30 s later (force refreshes
    within 30 s of the previous token do not refresh), and a /cgi-bin/token token
    issued before the refresh."""
    s = point_at(requests.Session(), server.base_url)
    creds = {"appid": server.appid, "secret": server.secret}
    first = stable_token(s, **creds)
    issued = time.monotonic()
    assert "access_token" in first, first
    r = s.get(f"{WX}/cgi-bin/token", params={"grant_type": "client_credential", **creds}, timeout=10)
    normal = r.json()["access_token"]
    time.sleep(max(0.0, issued + 31 - time.monotonic()))
    forced = stable_token(s, force_refresh=True, **creds)
    after = stable_token(s, **creds)
    s.close()
    return {"first": first["access_token"], "forced": forced, "after": after, "normal": normal}


def test_stable_token_force_refresh_returns_a_new_token_and_invalidates_the_old(stable_rotation, make_client):
    forced = stable_rotation["forced"]
    assert isinstance(forced.get("access_token"), str), forced
    assert forced["access_token"] != stable_rotation["first"]
    assert 300 < forced["expires_in"] <= 7200
    # a normal call afterwards returns the refreshed token
    assert stable_rotation["after"]["access_token"] == forced["access_token"]
    # the new one works, the replaced one is refused
    assert isinstance(make_client(access_token=forced["access_token"], auto_retry=False).template.get_category(), list)
    old = make_client(access_token=stable_rotation["first"], auto_retry=False)
    expect_errcode(40001, old.template.get_category)


def test_stable_token_refresh_does_not_touch_cgi_bin_token_tokens(stable_rotation, make_client):
    c = make_client(access_token=stable_rotation["normal"], auto_retry=False)
    assert isinstance(c.template.get_category(), list)


# ----------------------------------------------------------------------------- 3. login


def test_code_to_session_returns_the_openid_and_a_base64_session_key(server, client):
    device = Device(server)
    session = client.wxa.code_to_session(device.login())
    assert isinstance(session["openid"], str) and len(session["openid"]) >= 20, session
    key = session["session_key"]
    assert isinstance(key, str) and len(key) == 24, session
    assert len(base64.b64decode(key, validate=True)) == 16
    assert "errcode" not in session or session["errcode"] == 0
    # the same user logging in again keeps the same openid
    again = client.wxa.code_to_session(device.login())
    assert again["openid"] == session["openid"]


def test_code_to_session_gives_different_openids_to_different_users(server, client):
    a = client.wxa.code_to_session(Device(server, "甲").login())["openid"]
    b = client.wxa.code_to_session(Device(server, "乙").login())["openid"]
    assert a != b


def test_code_to_session_with_a_used_code_raises_40163(server, client):
    code = Device(server).login()
    client.wxa.code_to_session(code)
    expect_errcode(40163, client.wxa.code_to_session, code)


def test_code_to_session_with_a_made_up_code_raises_40029(client):
    expect_errcode(40029, client.wxa.code_to_session, "081aBcDeF0gHiJ1kLmN2oPqR3sT4uVwX")


# ----------------------------------------------------------------------------- 4. templates


def test_getcategory_lists_at_least_12_categories(client):
    cats = client.template.get_category()
    assert isinstance(cats, list) and len(cats) >= 12, cats
    for c in cats:
        assert isinstance(c["id"], int) and isinstance(c["name"], str) and c["name"], c
    assert {c["id"] for c in cats} == {c["id"] for c in LIBRARY["categories"]}


def test_getpubtemplatetitles_lists_the_titles_of_one_category(client):
    cat = LIBRARY["categories"][0]["id"]
    expected = [t for t in LIBRARY["templates"] if t["category_id"] == cat]
    assert expected
    res = client.template._get("wxaapi/newtmpl/getpubtemplatetitles", params={"ids": str(cat), "start": 0, "limit": 30})
    assert res["errcode"] == 0
    assert res["count"] == len(expected)
    assert len(res["data"]) == min(30, len(expected))
    for t in res["data"]:
        assert isinstance(t["tid"], int), t
        assert isinstance(t["categoryId"], str) and t["categoryId"] == str(cat), t
        assert t["type"] in (2, 3), t
        assert isinstance(t["title"], str) and t["title"], t
    assert {t["tid"] for t in res["data"]} <= {t["tid"] for t in expected}


def test_getpubtemplatetitles_pages_with_start_and_limit(client):
    cat = next(c["id"] for c in LIBRARY["categories"]
               if sum(t["category_id"] == c["id"] for t in LIBRARY["templates"]) >= 2)
    get = client.template._get
    full = get("wxaapi/newtmpl/getpubtemplatetitles", params={"ids": str(cat), "start": 0, "limit": 30})
    page = get("wxaapi/newtmpl/getpubtemplatetitles", params={"ids": str(cat), "start": 1, "limit": 1})
    assert page["count"] == full["count"]
    assert [t["tid"] for t in page["data"]] == [full["data"][1]["tid"]]


def test_getpubtemplatetitles_takes_several_comma_separated_ids(client):
    a, b = LIBRARY["categories"][0]["id"], LIBRARY["categories"][1]["id"]
    n = sum(t["category_id"] in (a, b) for t in LIBRARY["templates"])
    res = client.template._get("wxaapi/newtmpl/getpubtemplatetitles", params={"ids": f"{a},{b}", "start": 0, "limit": 30})
    assert res["count"] == n
    assert {t["categoryId"] for t in res["data"]} <= {str(a), str(b)}


def test_wechatpy_titles_wrapper_sends_no_ids_and_gets_200018(client):
    # wechatpy's get_subscribe_message_template_titles is the official-account flavour
    expect_errcode(200018, client.template.get_subscribe_message_template_titles, 0, 30)


def test_getpubtemplatekeywords_lists_the_keywords_of_a_tid(client):
    lib = LIBRARY["templates"][0]
    count, data = client.template.get_subscribe_message_template_keywords(str(lib["tid"]))
    assert count == len(lib["keywords"]) == len(data)
    got = {k["kid"]: (k["name"], k["example"], k["rule"]) for k in data}
    assert got == {k["kid"]: (k["name"], k["example"], k["rule"]) for k in lib["keywords"]}
    assert all(isinstance(k["kid"], int) for k in data)


def test_getpubtemplatekeywords_of_an_unknown_tid_raises_200014(client):
    expect_errcode(200014, client.template.get_subscribe_message_template_keywords, "999999999")


def _addable(server):
    """A library template with at least 3 keywords that the demo app does not have."""
    demo_titles = {t.title for t in server.templates}
    for t in LIBRARY["templates"]:
        if t["title"] not in demo_titles and len(t["keywords"]) >= 3:
            return t
    pytest.fail("library.json has no template to add")


def test_addtemplate_gettemplate_deltemplate_round_trip(server, client):
    lib = _addable(server)
    kws = lib["keywords"][:3]
    kids = [kws[2]["kid"], kws[0]["kid"], kws[1]["kid"]]  # the order defines the fields' order
    pri = client.template.add_subscribe_message_template(str(lib["tid"]), kids, "兼容测试")
    assert isinstance(pri, str) and len(pri) == 43, pri
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", pri), pri

    listed = private_templates(client)
    assert pri in listed
    t = listed[pri]
    assert t["title"] == lib["title"]
    assert t["type"] == lib["type"]
    by_kid = {k["kid"]: k for k in lib["keywords"]}
    assert t["content"] == "".join(f"{by_kid[k]['name']}:{{{{{by_kid[k]['rule']}{k}.DATA}}}}\n" for k in kids)
    assert t["example"] == "".join(f"{by_kid[k]['name']}:{by_kid[k]['example']}\n" for k in kids)

    res = client.template.del_subscribe_message_template(pri)
    assert res["errcode"] == 0 and res["errmsg"] == "ok"
    assert pri not in private_templates(client)


def test_gettemplate_lists_the_demo_templates_from_the_banner(server, client):
    listed = private_templates(client)
    for d in server.templates:
        assert d.id in listed, (d, sorted(listed))
        t = listed[d.id]
        assert t["title"] == d.title and t["type"] == d.type
        assert isinstance(t["content"], str) and PLACEHOLDER.search(t["content"]), t
        assert isinstance(t["example"], str) and t["example"], t


def test_addtemplate_with_a_kid_the_template_lacks_raises_200020(server, client):
    lib = _addable(server)
    bad = max(k["kid"] for k in lib["keywords"]) + 100
    expect_errcode(200020, client.template.add_subscribe_message_template,
                   str(lib["tid"]), [lib["keywords"][0]["kid"], bad], "兼容测试")


def test_addtemplate_with_a_single_kid_raises_200020(server, client):
    lib = _addable(server)
    expect_errcode(200020, client.template.add_subscribe_message_template,
                   str(lib["tid"]), [lib["keywords"][0]["kid"]], "兼容测试")


def test_addtemplate_with_an_unknown_tid_raises_200014(client):
    expect_errcode(200014, client.template.add_subscribe_message_template, "999999999", [1, 2], "兼容测试")


def test_addtemplate_with_a_scene_desc_over_15_chars_raises_200021(server, client):
    lib = _addable(server)
    kids = [k["kid"] for k in lib["keywords"][:2]]
    expect_errcode(200021, client.template.add_subscribe_message_template, str(lib["tid"]), kids, "一" * 16)


def test_addtemplate_twice_with_the_same_keywords_raises_200022(server, client):
    lib = _addable(server)
    kids = [k["kid"] for k in lib["keywords"][:2]]
    pri = client.template.add_subscribe_message_template(str(lib["tid"]), kids, "兼容测试")
    try:
        expect_errcode(200022, client.template.add_subscribe_message_template, str(lib["tid"]), kids, "兼容测试")
    finally:
        client.template.del_subscribe_message_template(pri)


def test_deltemplate_of_an_unknown_template_fails(client):
    with pytest.raises(WeChatClientException) as info:
        client.template.del_subscribe_message_template(MADE_UP_TEMPLATE)
    assert info.value.errcode not in (None, 0)


# ----------------------------------------------------------------------------- 5. send


def test_send_subscribe_message_after_one_accept_succeeds_once(server, client, user, one_time):
    t, data = one_time
    tid = t["priTmplId"]
    user.device.subscribe({tid: "accept"})
    assert consent_of(server, client, user.openid, tid)["remaining"] == 1

    result = client.wxa.send_subscribe_message(user.openid, tid, data)
    assert result["errcode"] == 0 and result["errmsg"] == "ok", result
    assert isinstance(result.get("msgid"), int) and not isinstance(result["msgid"], bool), result

    e = expect_errcode(43101, client.wxa.send_subscribe_message, user.openid, tid, data)
    assert "user refuse to accept the msg" in e.errmsg
    assert consent_of(server, client, user.openid, tid)["remaining"] == 0


def test_two_accepts_of_a_one_time_template_allow_two_sends(server, client, user, one_time):
    t, data = one_time
    tid = t["priTmplId"]
    user.device.subscribe({tid: "accept"})
    user.device.subscribe({tid: "accept"})
    assert consent_of(server, client, user.openid, tid)["remaining"] == 2
    client.wxa.send_subscribe_message(user.openid, tid, data)
    client.wxa.send_subscribe_message(user.openid, tid, data)
    expect_errcode(43101, client.wxa.send_subscribe_message, user.openid, tid, data)


def test_send_with_a_page_succeeds(client, user, one_time):
    t, data = one_time
    user.device.subscribe({t["priTmplId"]: "accept"})
    result = client.wxa.send_subscribe_message(user.openid, t["priTmplId"], data, page="pages/index/index?foo=bar")
    assert result["errcode"] == 0, result


def test_a_long_term_template_allows_several_sends_after_one_accept(client, user, long_term):
    t, data = long_term
    user.device.subscribe({t["priTmplId"]: "accept"})
    for _ in range(3):
        assert client.wxa.send_subscribe_message(user.openid, t["priTmplId"], data)["errcode"] == 0


def test_a_thing_value_of_20_characters_is_accepted(client, user, one_time):
    t, data = one_time
    user.device.subscribe({t["priTmplId"]: "accept"})
    data[first_key(data, "thing")] = {"value": "一二三四五六七八九十" * 2}
    assert client.wxa.send_subscribe_message(user.openid, t["priTmplId"], data)["errcode"] == 0


# ----------------------------------------------------------------------------- 6. send errors


def test_send_with_a_made_up_access_token_raises_40001(make_client, user, one_time):
    t, data = one_time
    c = make_client(access_token="this-is-not-a-token-" + "x" * 40, auto_retry=False)
    expect_errcode(40001, c.wxa.send_subscribe_message, user.openid, t["priTmplId"], data)


def test_send_with_an_access_token_param_that_is_bogus_raises_40001(make_client, user, one_time):
    t, data = one_time
    c = make_client(auto_retry=False)
    body = {"touser": user.openid, "template_id": t["priTmplId"], "data": data}
    expect_errcode(40001, c.wxa._post, "cgi-bin/message/subscribe/send", params={"access_token": "bogus"}, data=body)


def test_send_to_an_unknown_openid_raises_40003(client, one_time):
    t, data = one_time
    expect_errcode(40003, client.wxa.send_subscribe_message, MADE_UP_OPENID, t["priTmplId"], data)


def test_send_with_an_unknown_template_id_raises_40037(client, user, one_time):
    _, data = one_time
    expect_errcode(40037, client.wxa.send_subscribe_message, user.openid, MADE_UP_TEMPLATE, data)


def test_send_with_a_thing_value_of_21_characters_raises_47003_naming_the_key(client, user, one_time):
    t, data = one_time
    user.device.subscribe({t["priTmplId"]: "accept"})
    key = first_key(data, "thing")
    data[key] = {"value": "一二三四五六七八九十" * 2 + "一"}
    e = expect_errcode(47003, client.wxa.send_subscribe_message, user.openid, t["priTmplId"], data)
    assert f"data.{key}.value" in e.errmsg, e.errmsg
    assert e.errmsg.startswith("argument invalid!"), e.errmsg


def test_send_with_a_missing_data_key_raises_47003_is_emtpy(client, user, one_time):
    t, data = one_time
    user.device.subscribe({t["priTmplId"]: "accept"})
    key = first_key(data, "thing")
    del data[key]
    e = expect_errcode(47003, client.wxa.send_subscribe_message, user.openid, t["priTmplId"], data)
    assert f"data.{key}.value is emtpy" in e.errmsg, e.errmsg


def test_send_with_an_empty_value_raises_47003_is_emtpy(client, user, one_time):
    t, data = one_time
    user.device.subscribe({t["priTmplId"]: "accept"})
    key = first_key(data, "thing")
    data[key] = {"value": ""}
    e = expect_errcode(47003, client.wxa.send_subscribe_message, user.openid, t["priTmplId"], data)
    assert f"data.{key}.value is emtpy" in e.errmsg, e.errmsg


def test_send_without_any_consent_raises_43101(client, user, one_time):
    t, data = one_time
    expect_errcode(43101, client.wxa.send_subscribe_message, user.openid, t["priTmplId"], data)


def test_send_after_the_user_rejected_raises_43101(client, user, one_time):
    t, data = one_time
    user.device.subscribe({t["priTmplId"]: "reject"})
    expect_errcode(43101, client.wxa.send_subscribe_message, user.openid, t["priTmplId"], data)


# ----------------------------------------------------------------------------- 7. token refresh


def test_wechatpy_refreshes_a_made_up_cached_token_and_retries(make_client):
    bogus = "made-up-token-" + "y" * 40
    c = make_client(access_token=bogus)
    c.expires_at = int(time.time()) + 3600  # wechatpy believes the cached token is fresh
    assert isinstance(c.template.get_category(), list)
    assert c.access_token != bogus


def test_wechatpy_keeps_working_after_the_server_replaced_its_token(stable_rotation, make_client, server):
    # the client holds a stable token that force_refresh replaced on the server
    c = make_client(access_token=stable_rotation["first"])
    c.expires_at = int(time.time()) + 3600
    cats = c.template.get_category()
    assert len(cats) >= 12
    assert c.access_token != stable_rotation["first"]
    # the refreshed token is a good one
    assert isinstance(make_client(access_token=c.access_token, auto_retry=False).template.get_category(), list)
