"""Seeds a fresh tuisong server for the schemathesis run and prints its config file.

    seed.py BASE_URL APPID SECRET CONFIG_PATH   (prints the access token)

Gets an access token for the demo app, signs a device user in, has it accept every demo
template a few times, reads its openid, sends one message; then prints a schemathesis
config whose dictionaries hold these real ids (template ids, the openid, msgids), bound
to the matching path parameters and body fields with some probability, so generated
calls reach the handlers' logic and not only the 404s of random ids. Writes that config
to CONFIG_PATH and prints the access token. Standard library
only (it runs with the venv's Python before schemathesis).
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def ok(status_body, what):
    status, body = status_body
    if status != 200 or "errcode" in body and body["errcode"] != 0:
        raise SystemExit(f"seed: {what} failed: {status} {body}")
    return body


def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def main():
    base, appid, secret, config_path = sys.argv[1:5]
    q = urllib.parse.urlencode({"grant_type": "client_credential", "appid": appid, "secret": secret})
    token = ok(call("GET", f"{base}/cgi-bin/token?{q}"), "token")["access_token"]

    device = ok(call("POST", f"{base}/client/v1/users", {"nickname": "schemathesis"}), "new user")
    dt = device["device_token"]
    catalog = ok(call("GET", f"{base}/client/v1/apps/{appid}/templates", token=dt), "templates")
    templates = catalog["templates"]
    ids = [t["priTmplId"] for t in templates]
    for tid in ids:
        for _ in range(5):
            ok(call("POST", f"{base}/client/v1/subscribe",
                    {"appid": appid, "tmplIds": [tid], "decisions": {tid: "accept"}}, token=dt), "subscribe")

    code = ok(call("POST", f"{base}/client/v1/login", {"appid": appid}, token=dt), "login")["code"]
    q = urllib.parse.urlencode({"appid": appid, "secret": secret, "js_code": code,
                                "grant_type": "authorization_code"})
    openid = ok(call("GET", f"{base}/sns/jscode2session?{q}"), "jscode2session")["openid"]

    msgids = []
    for t in templates[:2]:
        data = {r["key"]: {"value": r["value"]} for r in t["rows"]}
        sent = ok(call("POST", f"{base}/v1/messages",
                       {"touser": openid, "template_id": t["priTmplId"], "data": data}, token=token), "send")
        msgids.append(sent["msgid"])

    config = f"""# Written by tests/openapi/seed.py for one run.
[dictionaries.templates]
values = {toml_list(ids)}

[dictionaries.openids]
values = {toml_list([openid])}

[dictionaries.msgids]
values = {toml_list([str(m) for m in msgids])}

[parameters]
"path.msgid" = {{ dictionary = "msgids", probability = 0.5 }}
"path.openid" = {{ dictionary = "openids", probability = 0.5 }}
"body.touser" = {{ dictionary = "openids", probability = 0.7 }}
"body.template_id" = {{ dictionary = "templates", probability = 0.7 }}
"query.template_id" = {{ dictionary = "templates", probability = 0.5 }}
"query.touser" = {{ dictionary = "openids", probability = 0.5 }}
"""
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(config)
    print(token)
    print(f"seed: {len(ids)} templates, openid {openid}, msgids {msgids}", file=sys.stderr)


if __name__ == "__main__":
    main()
