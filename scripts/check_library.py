#!/usr/bin/env python3
"""Validate crates/tuisong-core/data/library.json (the public template library).

Usage: python3 scripts/check_library.py [path/to/library.json]
Exits 0 and prints a summary when everything passes; exits 1 listing errors otherwise.
The keyword value rules mirror docs/spec section 5 (wechat-api.md) as pinned for tuisong.
"""
import json
import re
import string
import sys
from collections import Counter
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent / "crates/tuisong-core/data/library.json"

RULES = ["thing", "number", "letter", "symbol", "character_string", "time", "date",
         "amount", "phone_number", "car_number", "name", "phrase", "enum", "short_thing"]
MIN_TEMPLATES_PER_RULE = {r: 3 for r in RULES}
MIN_TEMPLATES_PER_RULE["enum"] = 5
LONG_TERM_CATEGORIES = {"政务民生", "医疗服务", "公交", "交通/公交", "交通", "金融/银行", "教育培训"}

MIN_CATEGORIES = 14
MIN_TEMPLATES = 64
MIN_TEMPLATES_PER_CATEGORY = 3
MIN_TYPE3 = 10

# ---------------------------------------------------------------- value rules
ASCII_PUNCT = set(string.punctuation)
CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

_D = r"(?:\d{4}年\d{1,2}月\d{1,2}日|\d{4}-\d{2}-\d{2}|\d{4}/\d{2}/\d{2})"
_T = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
_TIME_POINT = rf"(?:{_D} )?{_T}"
_DATE_POINT = rf"{_D}(?: {_T})?"
RE_TIME = re.compile(rf"{_TIME_POINT}(?:~{_TIME_POINT})?")
RE_DATE = re.compile(rf"{_DATE_POINT}(?:~{_DATE_POINT})?")
RE_DATE_PARTS = re.compile(r"(\d{4})(?:年|-|/)(\d{1,2})(?:月|-|/)(\d{1,2})")
RE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
RE_LETTER = re.compile(r"[A-Za-z]{1,32}")
RE_CHARSTR = re.compile(r"[\x21-\x7e]{1,32}")  # ASCII letters, digits, punctuation; no space
RE_AMOUNT = re.compile(r"[¥￥$€£]?(\d+)(?:\.(\d+))?元?")
RE_PHONE = re.compile(r"[0-9+\-() ]{1,17}")
RE_CAR = re.compile(rf"[{PROVINCES}](?:[A-Z0-9]{{6,7}}|[A-Z0-9]{{5,6}}[{CJK}])")
RE_NAME_CN = re.compile(rf"[{CJK}·]{{1,10}}")
RE_NAME_EN = re.compile(r"[A-Za-z .]{1,20}")
RE_PHRASE = re.compile(rf"[{CJK}]{{1,5}}")


def _dates_plausible(v):
    for y, m, d in RE_DATE_PARTS.findall(v):
        if not (1 <= int(m) <= 12 and 1 <= int(d) <= 31):
            return False
    return True


def check_value(rule, v, enum_values=None):
    """Return None if v satisfies rule, else a reason string."""
    if not isinstance(v, str) or v == "":
        return "empty or not a string"
    n = len(v)  # Unicode scalar values
    ok = True
    if rule == "thing":
        ok = 1 <= n <= 20 and "\n" not in v and "\r" not in v
    elif rule == "short_thing":
        ok = 1 <= n <= 5 and "\n" not in v and "\r" not in v
    elif rule == "number":
        ok = n <= 32 and RE_NUMBER.fullmatch(v) is not None
    elif rule == "letter":
        ok = RE_LETTER.fullmatch(v) is not None
    elif rule == "symbol":
        ok = 1 <= n <= 5 and all(c in ASCII_PUNCT for c in v)
    elif rule == "character_string":
        ok = RE_CHARSTR.fullmatch(v) is not None
    elif rule == "time":
        ok = RE_TIME.fullmatch(v) is not None and _dates_plausible(v)
    elif rule == "date":
        ok = RE_DATE.fullmatch(v) is not None and _dates_plausible(v)
    elif rule == "amount":
        m = RE_AMOUNT.fullmatch(v)
        ok = m is not None and len(m.group(1)) + len(m.group(2) or "") <= 10
    elif rule == "phone_number":
        ok = RE_PHONE.fullmatch(v) is not None and any(c.isdigit() for c in v)
    elif rule == "car_number":
        ok = n in (7, 8) and RE_CAR.fullmatch(v) is not None
    elif rule == "name":
        ok = RE_NAME_CN.fullmatch(v) is not None or RE_NAME_EN.fullmatch(v) is not None
    elif rule == "phrase":
        ok = RE_PHRASE.fullmatch(v) is not None
    elif rule == "enum":
        ok = enum_values is not None and v in enum_values
    else:
        return f"unknown rule {rule!r}"
    return None if ok else f"does not satisfy rule {rule}"


# ---------------------------------------------------------------- structure
def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    errors = []
    err = errors.append
    raw = path.read_text(encoding="utf-8")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        print(f"FAIL: invalid JSON: {e}")
        return 1
    if raw != json.dumps(data, ensure_ascii=False, indent=2) + "\n":
        err("file is not pretty-printed with 2-space indent (json.dumps(..., ensure_ascii=False, indent=2))")
    if set(data) != {"categories", "templates"}:
        err(f"top-level keys must be categories, templates; got {sorted(data)}")

    cats = data.get("categories", [])
    cat_names = {}
    for c in cats:
        if set(c) != {"id", "name"}:
            err(f"category {c}: keys must be id, name")
        cid = c.get("id")
        if not (isinstance(cid, int) and not isinstance(cid, bool) and 100 <= cid <= 9999):
            err(f"category {c}: id must be a 3-4 digit integer")
        if cid in cat_names:
            err(f"duplicate category id {cid}")
        if not isinstance(c.get("name"), str) or not c.get("name"):
            err(f"category {cid}: empty name")
        cat_names[cid] = c.get("name")
    if len(set(cat_names.values())) != len(cat_names):
        err("duplicate category names")
    if len(cats) < MIN_CATEGORIES:
        err(f"need >= {MIN_CATEGORIES} categories, have {len(cats)}")

    tpls = data.get("templates", [])
    if len(tpls) < MIN_TEMPLATES:
        err(f"need >= {MIN_TEMPLATES} templates, have {len(tpls)}")
    tids, titles = set(), set()
    per_cat = Counter()
    rule_tpl = Counter()
    rule_kw = Counter()
    type3 = 0
    for t in tpls:
        tid = t.get("tid")
        where = f"template {tid} {t.get('title')}"
        if set(t) != {"tid", "title", "type", "category_id", "keywords"}:
            err(f"{where}: keys must be tid, title, type, category_id, keywords; got {sorted(t)}")
        if not (isinstance(tid, int) and not isinstance(tid, bool) and 10 <= tid <= 99999):
            err(f"{where}: tid must be a 2-5 digit integer")
        if tid in tids:
            err(f"{where}: duplicate tid")
        tids.add(tid)
        title = t.get("title")
        if not isinstance(title, str) or not title:
            err(f"{where}: empty title")
        if title in titles:
            err(f"{where}: duplicate title")
        titles.add(title)
        cid = t.get("category_id")
        if cid not in cat_names:
            err(f"{where}: unknown category_id {cid}")
        per_cat[cid] += 1
        typ = t.get("type")
        if typ not in (2, 3) or isinstance(typ, bool):
            err(f"{where}: type must be 2 or 3")
        if typ == 3:
            type3 += 1
            if cat_names.get(cid) not in LONG_TERM_CATEGORIES:
                err(f"{where}: type 3 not allowed in category {cat_names.get(cid)}")
        kws = t.get("keywords", [])
        if not 4 <= len(kws) <= 8:
            err(f"{where}: needs 4-8 keywords, has {len(kws)}")
        names = set()
        used = set()
        for i, k in enumerate(kws, 1):
            kw = f"{where} kid {k.get('kid')}"
            rule = k.get("rule")
            expected = {"kid", "name", "example", "rule"} | ({"enum_values"} if rule == "enum" else set())
            if set(k) != expected:
                err(f"{kw}: keys must be {sorted(expected)}, got {sorted(k)}")
            if k.get("kid") != i:
                err(f"{kw}: kid should be {i}")
            if not k.get("name"):
                err(f"{kw}: empty name")
            if k.get("name") in names:
                err(f"{kw}: duplicate keyword name {k.get('name')}")
            names.add(k.get("name"))
            if rule not in RULES:
                err(f"{kw}: unknown rule {rule!r}")
                continue
            ev = None
            if rule == "enum":
                ev = k.get("enum_values")
                if not (isinstance(ev, list) and 2 <= len(ev) <= 8
                        and all(isinstance(x, str) and x for x in ev) and len(set(ev)) == len(ev)):
                    err(f"{kw}: enum_values must be 2-8 unique non-empty strings")
                    ev = None
            reason = check_value(rule, k.get("example"), ev)
            if reason:
                err(f"{kw}: example {k.get('example')!r} {reason}")
            used.add(rule)
            rule_kw[rule] += 1
        for r in used:
            rule_tpl[r] += 1

    for cid, name in cat_names.items():
        if per_cat[cid] < MIN_TEMPLATES_PER_CATEGORY:
            err(f"category {cid} {name}: needs >= {MIN_TEMPLATES_PER_CATEGORY} templates, has {per_cat[cid]}")
    if type3 < MIN_TYPE3:
        err(f"need >= {MIN_TYPE3} type-3 templates, have {type3}")
    for r in RULES:
        if rule_tpl[r] < MIN_TEMPLATES_PER_RULE[r]:
            err(f"rule {r} used in {rule_tpl[r]} templates, need >= {MIN_TEMPLATES_PER_RULE[r]}")

    print(f"file: {path}")
    print(f"categories: {len(cats)}  templates: {len(tpls)}  type-3: {type3}  "
          f"keywords: {sum(len(t.get('keywords', [])) for t in tpls)}")
    print("rule usage (templates / keywords):")
    for r in RULES:
        print(f"  {r:17s} {rule_tpl[r]:3d} / {rule_kw[r]:3d}")
    if errors:
        print(f"FAIL: {len(errors)} error(s)")
        for e in errors:
            print("  - " + e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
