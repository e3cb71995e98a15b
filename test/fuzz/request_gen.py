"""request_gen.py: random and mutated payout requests, replayable by seed.

Item i of seed S depends only on (S, i): item(S, i, methods) rebuilds it alone,
so a failure is replayed with `fuzz_requests.py --seed S --show i`.

An item is (kind, text): text is the JSON text handed to PostgreSQL (None for
SQL NULL).  Kinds:
  fixed     hand-picked edge cases (the first len(FIXED) items)
  valid     a valid request, random method, unicode text, optional fields
  mutated   a valid request with 1 to 3 fields mutated (type, null, missing,
            boundary lengths, unicode, control characters, numbers, digits,
            unknown and misspelt keys, ...)
  textual   a serialized valid request with its text mutated (truncation,
            inserted/deleted characters, escapes such as \\u0000 and lone
            surrogates, duplicate keys, BOM, stray whitespace)
  shaped    an object with the request's keys and random values
  random    random JSON of any type
  huge      documents of 1 to 5 MB (long strings, many keys, big arrays)
  deep      nesting from 100 to 100,000 levels
"""

import json
import random
import re
from decimal import Decimal

from payout_model import ISO3166_ALPHA2

# ---------------------------------------------------------------- serializer


class Num(str):
    """A number token written as is: Num("1.50e1")."""


class Raw(str):
    """Any JSON text written as is (a string token with odd escapes, ...)."""


class Pairs(list):
    """An object as a list of (key, value) pairs: duplicate keys allowed.
    A key may be Raw (written as is)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def quote(s, ascii_only=False):
    """A JSON string token; lone surrogates always come out as \\u escapes."""
    return json.dumps(s, ensure_ascii=ascii_only or bool(_SURROGATE.search(s)))


def dumps(v, ascii_only=False, sep=(",", ":")):
    out = []
    _dump(v, out, ascii_only, sep)
    return "".join(out)


def _dump(v, out, a, sep):
    # iterative enough for our depths: deep documents are built as text
    if isinstance(v, Raw):
        out.append(str(v))
    elif isinstance(v, Num):
        out.append(str(v))
    elif v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, (int, Decimal)):
        out.append(str(v))
    elif isinstance(v, str):
        out.append(quote(v, a))
    elif isinstance(v, Pairs):
        out.append("{")
        for i, (k, x) in enumerate(v):
            if i:
                out.append(sep[0])
            out.append(str(k) if isinstance(k, Raw) else quote(k, a))
            out.append(sep[1])
            _dump(x, out, a, sep)
        out.append("}")
    elif isinstance(v, dict):
        _dump(Pairs(v.items()), out, a, sep)
    elif isinstance(v, list):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(sep[0])
            _dump(x, out, a, sep)
        out.append("]")
    else:
        raise TypeError(type(v))


# ---------------------------------------------------------------- text

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789 .,-'&/()#:;!?@+",
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœŒÀÉÎÕÜ",
    "αβγδεζηθλμπσωΩЖДЯжщъыэюяё",
    "中文字符日本語한국어漢字",
    "العربيةעברית",
    "😀😁🎉💸🏦🇧🇯👩‍👩‍👧\u200d",
    "\u0301\u0308\u0327",            # combining marks
    "\u200b\u200c\u200e\u202e\ufeff",  # zero width, RTL override, BOM
    "\u0080\u0085\u009f\u00a0\u00ad\u2028\u2029\ufffd\uffff\U0010ffff",
]


def rtext(rng, lo, hi, pools=None):
    """lo..hi code points, at least one of them not whitespace."""
    n = rng.randint(lo, hi)
    if n == 0:
        return ""
    if n > 5000:                 # bulk: one pool, fast
        return "".join(rng.choices((pools or POOLS)[0], k=n))
    pools = pools or POOLS
    weights = [50, 10, 8, 6, 6, 4, 4, 2, 2, 2][:len(pools)]
    chars = [rng.choice(p) for p in rng.choices(pools, weights, k=n)]
    if all(c.isspace() or c in "\u200b\u200c\u200e\u202e\ufeff\u0301\u0308\u0327" for c in chars):
        chars[rng.randrange(n)] = rng.choice(POOLS[0])
    return "".join(chars)


def rascii(rng, lo, hi, alphabet="abcdefghijklmnopqrstuvwxyz0123456789"):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


TLDS = ["com", "io", "org", "net", "bj", "ci", "sn", "africa", "co", "info"]


def remail(rng):
    local_alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    parts = [rascii(rng, 1, 12, local_alpha) for _ in range(rng.randint(1, 3))]
    local = rng.choice(".-_+").join(parts) if rng.random() < 0.5 else ".".join(parts)
    local = local[:64].strip(".")
    if local.endswith(".") or not local:
        local = "x"
    labels = [rascii(rng, 1, 15) for _ in range(rng.randint(1, 3))]
    return f"{local}@{'.'.join(labels)}.{rng.choice(TLDS)}"


def rnumber(rng, dial, lo=7, hi=15):
    n = rng.randint(max(lo, len(dial) + 1), hi)
    rest = n - len(dial)
    first = "" if dial else rng.choice("123456789")
    return dial + first + "".join(rng.choice("0123456789") for _ in range(rest - len(first)))


SANDBOX = ["4149518161", "4149518162", "4149518163"]

# ---------------------------------------------------------------- valid requests


def valid_request(rng, methods):
    m = rng.choice(methods)
    amount = rng.choice([1, rng.randint(1, 999), rng.randint(1, 10 ** 6), rng.randint(1, 10 ** 15 - 1),
                         10 ** 15 - 1])
    customer = {"email": remail(rng), "first_name": rtext(rng, 1, 30), "last_name": rtext(rng, 1, 30)}
    if rng.random() < 0.1:
        customer["first_name"] = rtext(rng, 95, 100)
    for k, lo_hi in (("address", (1, 200)), ("city", (1, 100)), ("state", (1, 100)), ("zip", (1, 12))):
        if rng.random() < 0.3:
            customer[k] = rtext(rng, *lo_hi)
    if rng.random() < 0.4:
        customer["country"] = rng.choice(sorted(ISO3166_ALPHA2))
    if rng.random() < 0.4:
        phone = rnumber(rng, rng.choice(["229", "225", "221", "1", "33", "44", "237", "2"]))
        customer["phone"] = int(phone) if rng.random() < 0.5 else phone
    field = m["recipient_field"]
    if m["dial_code"]:
        number = rnumber(rng, m["dial_code"])
    else:
        number = rng.choice(SANDBOX) if rng.random() < 0.7 else rnumber(rng, "")
    req = {
        "amount": amount,
        "currency": m["currency"],
        "description": rtext(rng, 1, 155) if rng.random() < 0.3 else rtext(rng, 1, 40),
        "method": m["code"],
        "customer": customer,
        "recipient": {field: int(number) if rng.random() < 0.3 else number},
    }
    if rng.random() < 0.4:
        md = {}
        for _ in range(rng.randint(0, 10)):
            k = rascii(rng, 1, 20, "abcdefghijklmnopqrstuvwxyz_") if rng.random() < 0.8 else rtext(rng, 1, 64)
            if k != "payout_reference":
                md[k] = rtext(rng, 0, 60) if rng.random() < 0.9 else rtext(rng, 400, 500)
        req["metadata"] = dict(list(md.items())[:10])
    items = list(req.items())
    rng.shuffle(items)
    return dict(items)


# ---------------------------------------------------------------- mutations

AMOUNTS = ["0", "-0", "-1", "1", "1.0", "1.5", "0.5", "1e2", "1E+2", "1.5e1", "1.50e1", "100e-2",
           "999999999999999", "1000000000000000", "1e15", "1e14", "9.99999999999999e14",
           "0.1", "1e-1", "12345678901234567890", "1e1000", "-1e5", "5E0", "2.000", "0e0",
           "100.00", "7e-0"]
COUNTRIES_BAD = ["bj", "Bj", "BEN", "B", "", "QQ", "ZZ", "XX", "XK", "UK", "EU", "AA", "OO", "B1",
                 "ÉÉ", " BJ", "BJ ", "\u0411J"]
EMAILS = [
    "", " ", "plain", "@example.com", "a@", "a@b", "a@b.c", "a@@b.com", "a@b@c.com", "a b@c.com",
    "a@b c.com", "a@-b.com", "a@b-.com", "a@b..com", "a@.b.com", "a@b.com.", ".a@b.com", "a.@b.com",
    "a..b@c.com", "\"a\"@b.com", "a(b)@c.com", "a@b.c0m", "a@b.12", "a@b_c.com", "é@b.com",
    "a@exämple.com", "a@xn--exmple-cua.com", "a@b.com\n", "a\u0000@b.com", "a@b.com\u200b",
    "a+tag@b.co", "A@B.CO", "a@" + "b" * 64 + ".com", "a@" + "b" * 63 + ".com", "x" * 65 + "@b.com",
    "x" * 64 + "@b.com", "a@b." + "c" * 250, "a@[127.0.0.1]", "a@localhost", "a@b.c-m", "a\t@b.com",
    "<a@b.com>", "a@b.com,c@d.com", "a;b@c.com", "a@b.co\u202e", "a@1.2.3.4",
]
DIGIT_EDITS = ["plus", "space", "dash", "no_dial", "wrong_dial", "short", "long", "len7", "len15",
               "arabic", "fullwidth", "lead0", "num", "frac", "exp", "neg", "empty", "letters", "huge"]
TEXT_EDITS = ["empty", "spaces", "tab", "newline", "control", "del", "at_limit", "over_limit", "long",
              "emoji_limit", "emoji_over", "combining", "zw_only", "nbsp_only", "c1", "lead_trail",
              "backslash_u", "quote", "rtl", "bom", "nonchar", "replacement", "astral"]
TYPES = ["int", "float", "string", "true", "false", "array", "object", "nested", "null", "empty_str",
         "empty_arr", "empty_obj"]
LIMITS = {"description": 155, "first_name": 100, "last_name": 100, "address": 200, "city": 100,
          "state": 100, "zip": 100, "email": 254}


def rvalue(rng, depth=0):
    t = rng.choice(["int", "float", "str", "bool", "null", "arr", "obj"] if depth < 4
                   else ["int", "float", "str", "bool", "null"])
    if t == "int":
        return Num(str(rng.choice([0, 1, -1, rng.randint(-10 ** 20, 10 ** 20)])))
    if t == "float":
        return Num(rng.choice(["0.5", "-1.25", "1e10", "3.14159", "1E-7", "-0.0"]))
    if t == "str":
        return rtext(rng, 0, 20)
    if t == "bool":
        return rng.random() < 0.5
    if t == "null":
        return None
    if t == "arr":
        return [rvalue(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rtext(rng, 0, 8): rvalue(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def wrong_type(rng):
    t = rng.choice(TYPES)
    return {"int": lambda: Num(str(rng.randint(-5, 10 ** 12))),
            "float": lambda: Num(rng.choice(["1.5", "0.0", "-2.75", "1e-5"])),
            "string": lambda: rtext(rng, 1, 12),
            "true": lambda: True, "false": lambda: False,
            "array": lambda: [rvalue(rng) for _ in range(rng.randint(1, 3))],
            "object": lambda: {"x": rvalue(rng)},
            "nested": lambda: [[{"a": [1, {"b": None}]}]],
            "null": lambda: None, "empty_str": lambda: "",
            "empty_arr": lambda: [], "empty_obj": lambda: {}}[t]()


def edit_text(rng, s, limit):
    e = rng.choice(TEXT_EDITS)
    s = s if isinstance(s, str) and s else "Text"
    if e == "empty":
        return ""
    if e == "spaces":
        return " " * rng.randint(1, 5)
    if e == "tab":
        return s + "\tx"
    if e == "newline":
        return s[:3] + "\n" + s[3:]
    if e == "control":
        return s + chr(rng.randint(1, 31))
    if e == "del":
        return s + "\x7f"
    if e == "at_limit":
        return rtext(rng, limit, limit)
    if e == "over_limit":
        return rtext(rng, limit + 1, limit + 1)
    if e == "long":
        return rtext(rng, limit * 2, limit * 20)
    if e == "emoji_limit":
        return "😀" * limit
    if e == "emoji_over":
        return "😀" * (limit + 1)
    if e == "combining":
        return "e" + "\u0301" * min(limit - 1, rng.randint(1, 200))
    if e == "zw_only":
        return "\u200b" * rng.randint(1, 3)
    if e == "nbsp_only":
        return rng.choice(["\u00a0", "\u3000", "\u2003\u2003"])
    if e == "c1":
        return s + "\u0085"
    if e == "lead_trail":
        return " " + s + " "
    if e == "backslash_u":
        return "\\u0000" + s       # a backslash and five characters, not NUL
    if e == "quote":
        return '"' + s + "'"
    if e == "rtl":
        return "\u202e" + s
    if e == "bom":
        return "\ufeff" + s
    if e == "nonchar":
        return s + "\uffff\ufdd0"
    if e == "replacement":
        return s + "\ufffd"
    return s + "\U0001f4b8" * rng.randint(1, 3)


def edit_digits(rng, v, dial, methods):
    e = rng.choice(DIGIT_EDITS)
    s = str(v)
    dial = dial or ""
    if e == "plus":
        return "+" + s
    if e == "space":
        return s[:3] + " " + s[3:]
    if e == "dash":
        return s[:3] + "-" + s[3:]
    if e == "no_dial":
        return s[len(dial):] if dial else s[1:]
    if e == "wrong_dial":
        other = rng.choice([m["dial_code"] for m in methods if m["dial_code"]] + ["1", "44", "33"])
        return other + s[len(dial):]
    if e == "short":
        return s[:rng.randint(1, 6)]
    if e == "long":
        return s + "0" * rng.randint(16 - len(s) if len(s) < 16 else 1, 20)
    if e == "len7":
        return (s + "0000000")[:7]
    if e == "len15":
        return (s + "0" * 15)[:15]
    if e == "arabic":
        return s.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    if e == "fullwidth":
        return s.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    if e == "lead0":
        return "0" + s
    if e == "num":
        return Num(s)
    if e == "frac":
        return Num(s + ".0")
    if e == "exp":
        return Num(s[0] + "." + s[1:] + "e" + str(len(s) - 1)) if len(s) > 1 else Num(s + "e0")
    if e == "neg":
        return Num("-" + s)
    if e == "empty":
        return ""
    if e == "letters":
        return s[:-2] + "ab"
    return Num("9" * rng.randint(16, 400))


def mutate(rng, req, methods):
    """One mutation of req (a dict, modified in place and returned)."""
    by_code = {m["code"]: m for m in methods}
    method = by_code.get(req.get("method")) if isinstance(req.get("method"), str) else None
    target = rng.choice(["amount", "amount", "currency", "description", "method", "customer",
                         "customer.*", "customer.*", "customer.email", "customer.email",
                         "customer.phone", "customer.country", "recipient", "recipient.*",
                         "recipient.*", "metadata", "metadata", "top"])
    cust = req.get("customer") if isinstance(req.get("customer"), dict) else None
    rec = req.get("recipient") if isinstance(req.get("recipient"), dict) else None
    how = rng.random()

    def generic(container, key, limit=None):
        if how < 0.12:
            container.pop(key, None)
        elif how < 0.2:
            container[key] = None
        elif how < 0.45:
            container[key] = wrong_type(rng)
        elif limit:
            container[key] = edit_text(rng, container.get(key), limit)
        else:
            container[key] = wrong_type(rng)

    if target == "amount":
        if how < 0.6:
            req["amount"] = Num(rng.choice(AMOUNTS))
        elif how < 0.75:
            req["amount"] = rng.choice(["100", "1e2", "", " 100", "100 USD", "١٠٠"])
        else:
            generic(req, "amount")
    elif target == "currency":
        if how < 0.6:
            cur = req.get("currency") if isinstance(req.get("currency"), str) else "USD"
            req["currency"] = rng.choice([cur.lower(), cur[:2], cur + "X", "EUR", "USD", "XOF", "GHS",
                                          "XAF", " " + cur, "ÜSD", "usd", "", "U$D"])
        else:
            generic(req, "currency")
    elif target == "description":
        generic(req, "description", 155)
    elif target == "method":
        if how < 0.6:
            code = req.get("method") if isinstance(req.get("method"), str) else "mtn_bj"
            req["method"] = rng.choice([code.upper(), code + " ", "unknown_method", "",
                                        rng.choice(methods)["code"], "fuzz_custom", "mtn-bj",
                                        "moneroo_payout_demo", code[:-1], "MONEROO_PAYOUT_DEMO"])
        else:
            generic(req, "method")
    elif target == "customer":
        if how < 0.5:
            req["customer"] = wrong_type(rng)
        elif how < 0.7:
            req.pop("customer", None)
        elif cust is not None:
            cust[rng.choice(["Email", "email ", "phone_number", "country_code", "name", "",
                             "first_name\u200b", "id"])] = rvalue(rng)
        else:
            req["customer"] = {}
    elif target.startswith("customer") and cust is not None:
        key = target.split(".")[1] if target != "customer.*" else rng.choice(
            ["first_name", "last_name", "address", "city", "state", "zip", "email"])
        if key == "email" and how < 0.7:
            cust["email"] = rng.choice(EMAILS)
        elif key == "phone":
            cur = cust.get("phone", "22951345020")
            cust["phone"] = edit_digits(rng, cur, "229" if str(cur).startswith("229") else "", methods) \
                if how < 0.7 else wrong_type(rng)
        elif key == "country":
            cust["country"] = rng.choice(COUNTRIES_BAD) if how < 0.7 else (
                rng.choice(sorted(ISO3166_ALPHA2)) if how < 0.8 else wrong_type(rng))
        else:
            generic(cust, key, LIMITS.get(key))
    elif target == "recipient":
        if how < 0.3:
            req["recipient"] = wrong_type(rng)
        elif how < 0.4:
            req.pop("recipient", None)
        elif rec is not None:
            other = rng.choice(["msisdn", "account_number", "phone", "Msisdn", "iban", ""])
            if how < 0.6 and rec:
                k = next(iter(rec))
                rec[other] = rec.pop(k)                  # the other field instead
            else:
                rec[other] = rnumber(rng, "")            # a second field
    elif target == "recipient.*" and rec is not None and rec:
        k = next(iter(rec))
        dial = method["dial_code"] if method else ""
        rec[k] = edit_digits(rng, rec[k], dial, methods) if how < 0.8 else wrong_type(rng)
    elif target == "metadata":
        md = req.get("metadata") if isinstance(req.get("metadata"), dict) else {}
        choice = rng.choice(["ten", "eleven", "reserved", "nested", "number", "null", "empty_key",
                             "key64", "key65", "val500", "val501", "type", "empty", "bool", "many"])
        if choice == "ten":
            md = {f"k{i}": rtext(rng, 0, 10) for i in range(10)}
        elif choice == "eleven":
            md = {f"k{i}": rtext(rng, 0, 10) for i in range(11)}
        elif choice == "reserved":
            md["payout_reference"] = rng.choice(["x", "00000000-0000-0000-0000-000000000000", Num("1")])
        elif choice == "nested":
            md["order"] = {"id": "1042"}
        elif choice == "number":
            md["order_id"] = Num("1042")
        elif choice == "null":
            md["order_id"] = None
        elif choice == "empty_key":
            md[""] = "v"
        elif choice == "key64":
            md["k" * 64] = "v"
        elif choice == "key65":
            md["k" * 65] = "v"
        elif choice == "val500":
            md["v"] = "é" * 500
        elif choice == "val501":
            md["v"] = "é" * 501
        elif choice == "bool":
            md["flag"] = True
        elif choice == "many":
            md = {f"k{i}": "v" for i in range(rng.randint(12, 300))}
        elif choice == "type":
            req["metadata"] = wrong_type(rng)
            return req
        else:
            md = {}
        if len(md) > 10 and choice in ("reserved", "nested", "number", "null", "empty_key", "key64",
                                        "key65", "val500", "val501", "bool"):
            md = dict(list(md.items())[-10:])
        req["metadata"] = md
    else:  # top
        k = rng.choice(["Amount", "amount ", "amоunt", "extra", "reference", "payout_reference",
                        "status", "", "currency\u0000", "return_url", "customer_id"])
        if k == "amоunt" and how < 0.5:
            req[k] = req.pop("amount", Num("1"))       # a Cyrillic о instead
        elif k == "Amount" and how < 0.5:
            req[k] = req.pop("amount", Num("1"))
        else:
            req[k] = rvalue(rng)
    return req


# ---------------------------------------------------------------- text mutations

ESCAPES = ['"\\u0000"', '"\\u0000abc"', '"abc\\u0000"', '"\\ud800"', '"\\udc00"', '"a\\ud800b"',
           '"\\ud83d\\ude00"', '"\\ud83d"', '"\\ude00\\ud83d"', '"\\u00e9"', '"\\u0041"', '"\\/"',
           '"\\b\\f\\n\\r\\t"', '"\\x41"', '"\\u12"', '"\\uZZZZ"', '"\\\\u0000"', '"\\u0001"',
           '"\\u001f"', '"\\u007f"', '"\\uffff"', '"\\ufeff"', '"\\U0041"', '"\\\'"', '"\\a"',
           '"\\u00000"', '"\\u0000\\u0000"', '"\\ud800\\u0000"', '"\\udbff\\udfff"']
KEY_ESCAPES = {"amount": ['"\\u0061mount"', '"am\\u006Funt"', '"amount\\u0000"', '"\\u0000amount"'],
               "currency": ['"\\u0063urrency"', '"currenc\\u0079"'],
               "method": ['"m\\u0065thod"', '"method\\ud800"']}


def textual(rng, req, methods):
    """A text mutation of a valid request."""
    e = rng.choice(["truncate", "delete", "insert", "replace", "swap", "escape_value", "escape_value",
                    "escape_key", "duplicate", "duplicate", "bom", "whitespace", "trailing", "wrap",
                    "number_syntax", "quote_style", "comment", "trailing_comma", "pretty"])
    if e in ("escape_value", "escape_key", "duplicate", "number_syntax"):
        pairs = Pairs(req.items())
        if e == "escape_value":
            target = rng.choice(["description", "currency", "method", "customer", "metadata"])
            esc = Raw(rng.choice(ESCAPES))
            for i, (k, v) in enumerate(pairs):
                if k == target:
                    if isinstance(v, dict):
                        sub = Pairs(v.items())
                        if sub and rng.random() < 0.7:
                            j = rng.randrange(len(sub))
                            sub[j] = (sub[j][0], esc)
                        else:
                            sub.append((Raw(esc), "x"))   # as a key
                        pairs[i] = (k, sub)
                    else:
                        pairs[i] = (k, esc)
            return dumps(pairs)
        if e == "escape_key":
            k = rng.choice(list(KEY_ESCAPES))
            return dumps(Pairs((Raw(rng.choice(KEY_ESCAPES[k])) if kk == k else kk, v) for kk, v in pairs))
        if e == "duplicate":
            k, v = rng.choice(list(pairs))
            dup = (k, wrong_type(rng))
            if rng.random() < 0.5:
                pairs.insert(0, dup)         # the valid value comes last: jsonb keeps it
            else:
                pairs.append(dup)            # the bad value comes last
            return dumps(pairs)
        # number_syntax
        bad = rng.choice(["+1", ".5", "01", "1.", "1e", "0x10", "Infinity", "-Infinity", "NaN", "1_000",
                          "- 1", "1.e5", "--1", "1e+", "١", "00", "-01", "1E400000"])
        pairs = Pairs((k, Raw(bad) if k == "amount" else v) for k, v in pairs)
        return dumps(pairs)
    text = dumps(req, ascii_only=rng.random() < 0.3)
    n = len(text)
    if e == "truncate":
        return text[:rng.randrange(n)]
    if e == "delete":
        i = rng.randrange(n)
        return text[:i] + text[i + 1:]
    if e == "insert":
        i = rng.randrange(n + 1)
        return text[:i] + rng.choice('{}[]":,\\ 0a-.e\u00e9\u0007') + text[i:]
    if e == "replace":
        i = rng.randrange(n)
        return text[:i] + rng.choice('{}[]":,\\ 0a') + text[i + 1:]
    if e == "swap":
        i = rng.randrange(n - 1)
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if e == "bom":
        return "\ufeff" + text
    if e == "whitespace":
        ws = rng.choice([" \t\r\n ", "\v", "\f", "\u00a0", "\u2028", "\u3000", "\n" * 50])
        i = text.find(",") + 1 if "," in text else 1
        return text[:i] + ws + text[i:]
    if e == "trailing":
        return text + rng.choice([" x", "}", "{}", ",", "\n", " ", "\t", "null", "\u0085"])
    if e == "wrap":
        return rng.choice(["[" + text + "]", '{"request":' + text + "}", '"' + text.replace('"', '\\"') + '"'])
    if e == "quote_style":
        return text.replace('"', "'", rng.randint(1, 4))
    if e == "comment":
        return text[:1] + "/* c */" + text[1:]
    if e == "trailing_comma":
        return text[:-1] + ",}"
    return dumps(req, sep=(",\n  ", ": "))


# ---------------------------------------------------------------- shaped / random / huge / deep

def shaped(rng, methods):
    keys = ["amount", "currency", "description", "method", "customer", "recipient", "metadata"]
    obj = {}
    for k in keys:
        if rng.random() < 0.8:
            obj[k] = rvalue(rng) if rng.random() < 0.5 else valid_request(rng, methods).get(k, rvalue(rng))
    if rng.random() < 0.2:
        obj[rtext(rng, 1, 10)] = rvalue(rng)
    return obj


def random_json(rng):
    top = rng.random()
    if top < 0.5:
        return {rtext(rng, 0, 12): rvalue(rng) for _ in range(rng.randint(0, 8))}
    return rvalue(rng)


def huge(rng, methods, n):
    base = valid_request(rng, methods)
    v = n % 12
    if v == 0:
        base["description"] = rtext(rng, 10 ** 6, 10 ** 6, [POOLS[0]])
    elif v == 1:
        base["metadata"] = {f"key{i}": "v" for i in range(100000)}
    elif v == 2:
        base["unknown_" + str(n)] = [Num(str(i)) for i in range(200000)]
    elif v == 3:
        base["customer"]["address"] = "A" * (5 * 10 ** 6)
    elif v == 4:
        base["metadata"] = {"blob": "é" * (10 ** 6)}
    elif v == 5:
        base["metadata"] = {f"k{i}": rtext(rng, 400, 500) for i in range(10)}   # valid, bulky
    elif v == 6:
        pad = " " * (3 * 10 ** 6)
        return "{" + pad + dumps(base)[1:-1] + pad + "}"                      # valid, 6 MB
    elif v == 7:
        base[Raw(quote("k" * (10 ** 6)))] = 1
        return dumps(Pairs(base.items()))
    elif v == 8:
        pairs = Pairs(("amount", Num("-1")) for _ in range(50000))
        pairs.extend(base.items())                                             # the last amount wins
        return dumps(pairs)
    elif v == 9:
        base["description"] = "😀" * (10 ** 6)
    elif v == 10:
        base["customer"]["first_name"] = "\u0301" * (10 ** 6)
    else:
        base["recipient"] = {next(iter(base["recipient"])): "4" * (10 ** 6)}
    return dumps(base)


DEPTHS = [100, 1000, 5000, 20000, 100000]


def deep(rng, methods, n):
    base = valid_request(rng, methods)
    d = DEPTHS[n % len(DEPTHS)]
    where = (n // len(DEPTHS)) % 4
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    nest = opener * d + "1" + closer * d
    if where == 0:
        return nest                                     # the whole request
    if where == 1:
        base["metadata"] = {"deep": Raw(nest)}
    elif where == 2:
        base["customer"]["extra"] = Raw(nest)
    else:
        base["description"] = Raw(nest)
    return dumps(base)


# ---------------------------------------------------------------- fixed cases

def base_valid():
    return {"amount": 500, "currency": "USD", "description": "Refund of order 1042",
            "method": "moneroo_payout_demo",
            "customer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
            "recipient": {"account_number": "4149518161"}}


def with_(path, value):
    r = base_valid()
    parts = path.split(".")
    obj = r
    for p in parts[:-1]:
        obj = obj[p]
    if value is _DELETE:
        obj.pop(parts[-1], None)
    else:
        obj[parts[-1]] = value
    return dumps(r)


_DELETE = object()


def fixed_cases():
    bj = {"amount": 1000, "currency": "XOF", "description": "Salaire", "method": "mtn_bj",
          "customer": {"email": "jean@example.bj", "first_name": "Jean", "last_name": "Dossou",
                       "phone": 22951345020, "country": "BJ"},
          "recipient": {"msisdn": "22951345020"}}
    cases = [
        None, "", " ", "null", "true", "0", '"x"', "[]", "{}", "[{}]", '{"amount":1}',
        dumps(base_valid()), dumps(bj),
        with_("description", "x" * 155), with_("description", "x" * 156),
        with_("description", "é" * 155), with_("description", "é" * 156),
        with_("customer.first_name", "x" * 100), with_("customer.first_name", "x" * 101),
        with_("customer.last_name", ""), with_("customer.last_name", " "),
        with_("customer.address", "a" * 200), with_("customer.address", "a" * 201),
        with_("customer.city", "c" * 100), with_("customer.city", "c" * 101),
        with_("customer.zip", "z" * 101), with_("customer.state", "s" * 100),
        with_("amount", Num("1")), with_("amount", Num("0")), with_("amount", Num("-5")),
        with_("amount", Num("12.5")), with_("amount", "500"), with_("amount", Num("999999999999999")),
        with_("amount", Num("1000000000000000")), with_("amount", Num("1e2")), with_("amount", Num("100.0")),
        with_("amount", True), with_("amount", None), with_("amount", _DELETE),
        with_("currency", "usd"), with_("currency", "EUR"), with_("currency", "US"),
        with_("method", "nope"), with_("method", "MONEROO_PAYOUT_DEMO"), with_("method", 1),
        with_("customer", "ada@example.com"), with_("customer", []),
        with_("customer.email", "ada"), with_("customer.email", "ada@example"),
        with_("customer.country", "BJ"), with_("customer.country", "bj"), with_("customer.country", "QQ"),
        with_("customer.country", "UK"), with_("customer.phone", 22951345020),
        with_("customer.phone", "22951345020"), with_("customer.phone", "+22951345020"),
        with_("customer.phone", "022951345020"), with_("customer.phone", 123456),
        with_("customer.phone", "1234567890123456"),
        with_("recipient", {"account_number": 4149518161}), with_("recipient", {"account_number": "414951816"}),
        with_("recipient", {"account_number": "4149518161", "msisdn": "4149518161"}),
        with_("recipient", {"msisdn": "4149518161"}), with_("recipient", {}), with_("recipient", "4149518161"),
        with_("recipient", {"account_number": "+4149518161"}), with_("recipient", {"account_number": "123456"}),
        with_("recipient", {"account_number": "1234567"}), with_("recipient", {"account_number": "1" * 15}),
        with_("recipient", {"account_number": "1" * 16}), with_("recipient", {"account_number": Num("4149518161.0")}),
        with_("recipient", {"account_number": Num("4.149518161e9")}),
        with_("metadata", {}), with_("metadata", None), with_("metadata", {"order_id": "1042"}),
        with_("metadata", {"order_id": 1042}), with_("metadata", {"payout_reference": "x"}),
        with_("metadata", {f"k{i}": "v" for i in range(10)}), with_("metadata", {f"k{i}": "v" for i in range(11)}),
        with_("metadata", ["a"]), with_("extra", 1), with_("Amount", 1),
        with_("description", "line\nbreak"), with_("description", "tab\there"), with_("description", "\u00a0"),
        with_("description", "😀" * 155), with_("description", "😀" * 156),
        '{"amount":500,"amount":"x","currency":"USD","description":"d","method":"moneroo_payout_demo",'
        '"customer":{"email":"a@b.co","first_name":"A","last_name":"B"},"recipient":{"account_number":"4149518161"}}',
        '{"amount":"x","amount":500,"currency":"USD","description":"d","method":"moneroo_payout_demo",'
        '"customer":{"email":"a@b.co","first_name":"A","last_name":"B"},"recipient":{"account_number":"4149518161"}}',
        dumps(base_valid()).replace('"Ada"', '"\\u0000"'), dumps(base_valid()).replace('"Ada"', '"\\ud800"'),
        dumps(base_valid()).replace('"Ada"', '"\\\\u0000"'), dumps(base_valid()).replace('"Ada"', '"A\\u0001"'),
        dumps(base_valid()).replace('"Ada"', '"\\ud83d\\ude00"'),
        dumps(base_valid()).replace('"amount"', '"\\u0061mount"'),
    ]
    return cases


FIXED = fixed_cases()

# ---------------------------------------------------------------- the items

KINDS = [("valid", 15), ("mutated", 45), ("textual", 15), ("shaped", 12), ("random", 13)]


def specials(count):
    """How many huge and deep documents come after the fixed cases: one per
    1,000 requests, at most two rounds of each variant (huge ones are 1 to 6 MB)."""
    n = max(1, count // 1000)
    return min(n, 24), min(n, 40)


def item(seed, i, methods, count):
    """(kind, text) of item i."""
    if i < len(FIXED):
        return "fixed", FIXED[i]
    rng = random.Random(f"{seed}:{i}")
    n_huge, n_deep = specials(count)
    j = i - len(FIXED)
    if j < n_huge:
        return "huge", huge(rng, methods, j)
    if j < n_huge + n_deep:
        return "deep", deep(rng, methods, j - n_huge)
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    if kind == "valid":
        return kind, dumps(valid_request(rng, methods), ascii_only=rng.random() < 0.2)
    if kind == "mutated":
        req = valid_request(rng, methods)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            req = mutate(rng, req, methods)
        return kind, dumps(req, ascii_only=rng.random() < 0.2)
    if kind == "textual":
        return kind, textual(rng, valid_request(rng, methods), methods)
    if kind == "shaped":
        return kind, dumps(shaped(rng, methods))
    return kind, dumps(random_json(rng))
