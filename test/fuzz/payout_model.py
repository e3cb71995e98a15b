"""payout_model.py: the oracle of the bad-input campaign.

A Python model of the "Validation" section of /work/shared/interface.md (and of
README.md where the contract leaves a number open), written from the contract,
not from src/request_validator.c.  Two questions:

  parse_verdict(text)  -> "ok" | "fail" | "either"
      would PostgreSQL's jsonb input accept this text?  (RFC 8259 JSON, minus
      what jsonb cannot hold: \\u0000 and unpaired surrogates; numbers beyond
      numeric's range and nesting beyond the stack are "either".)

  verdict(doc, methods) -> Verdict(kind, fields, notes)
      kind "valid"   : the contract says accept it;
           "invalid" : the contract says refuse it (SQLSTATE 22023), and the
                       error must name one of `fields`;
           "either"  : the contract is silent (see AMBIGUOUS below): any
                       answer but a crash or a non-22023 error is fine.

Numbers are decimal.Decimal (parse with parse_float=parse_int=Decimal), which
keeps what jsonb's numeric keeps: 100.0 has a fraction digit, 1e2 does not.

Decisions where the contract is silent (reported, not tested as failures):
  - free-text fields made only of ASCII spaces are refused ("non-empty");
    text that is only other whitespace (U+00A0, U+3000) is "either";
  - C0 control characters and DEL in free text: "either" (the contract says
    nothing; refusing them is defensible);
  - an empty string in an optional text field: "either";
  - metadata keys of 0 or more than 64 characters, values over 500: "either"
    (the extension's own limits, not in the contract);
  - email: RFC-invalid but common forms ("a..b@x.io"), internationalised
    addresses, numeric top-level domains, a trailing dot: "either";
  - the sandbox method's recipient starting with 0: "either".
"""

import re
from decimal import Decimal

ISO3166_ALPHA2 = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())

TOP_KEYS = ("amount", "currency", "description", "method", "customer", "recipient", "metadata")
TOP_REQUIRED = ("amount", "currency", "description", "method", "customer", "recipient")
CUSTOMER_KEYS = ("email", "first_name", "last_name", "phone", "address", "city", "state",
                 "country", "zip")
CUSTOMER_REQUIRED = ("email", "first_name", "last_name")
TEXT_LIMITS = {"description": 155, "customer.first_name": 100, "customer.last_name": 100,
               "customer.address": 200, "customer.city": 100, "customer.state": 100,
               "customer.zip": 100, "customer.email": 254}
AMOUNT_MAX_DIGITS = 15          # README: "at most 15 digits"
E164_MIN, E164_MAX = 7, 15      # shortest numbers in use (+290 XXXX) to E.164's 15
METADATA_MAX = 10

DIGITS = re.compile(r"[0-9]+")  # ASCII only: "٤" is a digit to str.isdigit()
EMAIL_LOCAL_BAD = set(' "(),:;<>[]\\@')
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


class Verdict:
    __slots__ = ("kind", "fields", "notes")

    def __init__(self):
        self.kind = "valid"
        self.fields = set()     # fields an error may name (invalid and either ones)
        self.notes = []         # why, for reports

    def invalid(self, field, why):
        self.kind = "invalid"
        self.fields.add(field)
        self.notes.append(f"{field}: {why}")

    def either(self, field, why):
        if self.kind == "valid":
            self.kind = "either"
        self.fields.add(field)
        self.notes.append(f"{field}: (either) {why}")

    def __repr__(self):
        return f"Verdict({self.kind}, {sorted(self.fields)}, {self.notes})"


def is_number(v):
    return isinstance(v, Decimal)


def integer_digits(v):
    """Digits of a JSON integer (no fraction digits, no sign) or of a string of
    ASCII digits; None otherwise."""
    if isinstance(v, Decimal):
        if not v.is_finite():
            return None
        t = v.as_tuple()
        if t.exponent < 0 or t.sign:        # fraction digits (1.0, 1.50e1), negative, -0
            return None
        digits = "".join(map(str, t.digits)).lstrip("0")
        if not digits:
            return "0"
        if len(digits) + t.exponent > 1000:     # far too long anyway: do not spell it out
            return "9" * 1001
        return digits + "0" * t.exponent
    if isinstance(v, str) and DIGITS.fullmatch(v):
        return v
    return None


def has_control(s):
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


def check_text(v, field, limit, optional, verdict):
    if not isinstance(v, str):
        verdict.invalid(field, f"not a string ({type_name(v)})")
        return False
    if v == "":
        if optional:
            verdict.either(field, "empty optional text")
        else:
            verdict.invalid(field, "empty")
        return False
    if len(v) > limit:
        verdict.invalid(field, f"{len(v)} characters > {limit}")
        return False
    if set(v) == {" "}:
        verdict.invalid(field, "only spaces")
        return False
    if v.isspace():
        verdict.either(field, "only non-ASCII whitespace")
    if has_control(v):
        verdict.either(field, "control character")
    return True


def check_email(v, verdict):
    field = "customer.email"
    if not check_text(v, field, TEXT_LIMITS[field], False, verdict):
        return
    if has_control(v):
        verdict.invalid(field, "control character in an address")
        return
    if v.count("@") != 1:
        verdict.invalid(field, "not exactly one @")
        return
    local, domain = v.split("@")
    if local == "" or len(local) > 64:
        verdict.invalid(field, "local part empty or over 64")
        return
    if any(c in EMAIL_LOCAL_BAD or c.isspace() for c in local):
        verdict.invalid(field, "space or special character in the local part")
        return
    if local.startswith(".") or local.endswith("."):
        verdict.invalid(field, "local part starts or ends with a dot")
        return
    if not local.isascii():
        verdict.either(field, "internationalised local part")
    elif ".." in local:
        verdict.either(field, "consecutive dots in the local part")
    if domain == "":
        verdict.invalid(field, "no domain")
        return
    if not domain.isascii():
        if all(c.isalnum() or c in ".-" for c in domain) and "." in domain.strip("."):
            verdict.either(field, "internationalised domain")
        else:
            verdict.invalid(field, "domain with characters no domain has")
        return
    labels = domain.split(".")
    if labels[-1] == "" and len(labels) > 2 and all(labels[:-1]):
        verdict.either(field, "trailing dot")
        labels = labels[:-1]
    if len(labels) < 2:
        verdict.invalid(field, "domain without a dot")
        return
    for label in labels:
        if not LABEL.fullmatch(label):
            verdict.invalid(field, f"bad domain label {label[:20]!r}")
            return
        if len(label) > 63:
            verdict.either(field, "domain label over 63")
    tld = labels[-1]
    if len(tld) < 2:
        verdict.invalid(field, "one-character top-level domain")
    elif not tld.isalpha():
        verdict.either(field, "top-level domain with digits or hyphens")


def check_phone(v, verdict):
    field = "customer.phone"
    digits = integer_digits(v)
    if digits is None:
        verdict.invalid(field, "not an integer or a digit string")
    elif digits.startswith("0"):
        verdict.invalid(field, "E.164 never starts with 0")
    elif not E164_MIN <= len(digits) <= E164_MAX:
        verdict.invalid(field, f"{len(digits)} digits")


def check_customer(c, verdict):
    if not isinstance(c, dict):
        verdict.invalid("customer", f"not an object ({type_name(c)})")
        return
    for k in c:
        if k not in CUSTOMER_KEYS:
            verdict.invalid("customer." + k, "unknown key")
    for k in CUSTOMER_REQUIRED:
        if c.get(k) is None:
            verdict.invalid("customer." + k, "missing")
    for k in CUSTOMER_KEYS:
        v = c.get(k)
        if v is None:
            continue
        field = "customer." + k
        if k == "email":
            check_email(v, verdict)
        elif k == "phone":
            check_phone(v, verdict)
        elif k == "country":
            if not isinstance(v, str):
                verdict.invalid(field, "not a string")
            elif v not in ISO3166_ALPHA2:
                verdict.invalid(field, f"{v[:10]!r} is not an ISO 3166-1 alpha-2 code")
        else:
            check_text(v, field, TEXT_LIMITS[field], k not in CUSTOMER_REQUIRED, verdict)


def check_metadata(m, verdict):
    if not isinstance(m, dict):
        verdict.invalid("metadata", f"not an object ({type_name(m)})")
        return
    if len(m) > METADATA_MAX:
        verdict.invalid("metadata", f"{len(m)} entries")
    for k, v in m.items():
        if k == "payout_reference":
            verdict.invalid("metadata.payout_reference", "reserved")
        elif k == "" or len(k) > 64:
            verdict.either("metadata", "key of 0 or over 64 characters")
        if not isinstance(v, str):
            verdict.invalid("metadata." + k, f"not a string ({type_name(v)})")
        elif len(v) > 500:
            verdict.either("metadata." + k, "value over 500 characters")


def check_recipient(r, method, verdict):
    if not isinstance(r, dict):
        verdict.invalid("recipient", f"not an object ({type_name(r)})")
        return
    if method is None:
        return
    name = method["recipient_field"]
    field = "recipient." + name
    for k in r:
        if k != name:
            verdict.invalid("recipient." + k, f"not the field of method {method['code']}")
    v = r.get(name)
    if v is None:
        verdict.invalid(field, "missing")
        return
    digits = integer_digits(v)
    if digits is None:
        verdict.invalid(field, "not an integer or a digit string")
    elif not E164_MIN <= len(digits) <= E164_MAX:
        verdict.invalid(field, f"{len(digits)} digits")
    elif method["dial_code"] and not digits.startswith(method["dial_code"]):
        verdict.invalid(field, f"does not start with dial code {method['dial_code']}")
    elif not method["dial_code"] and digits.startswith("0"):
        verdict.either(field, "sandbox number starting with 0")


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def verdict(doc, methods, max_amounts=None):
    """methods: {code: {"code", "currency", "country", "recipient_field", "dial_code"}};
    max_amounts: {currency: max_amount} of moneroo_limits (since 1.2: a larger
    amount is refused by validation, naming "amount")."""
    out = Verdict()
    if not isinstance(doc, dict):
        out.invalid("(root)", f"not an object ({type_name(doc)})")
        return out
    for k in doc:
        if k not in TOP_KEYS:
            out.invalid(k, "unknown key")
    for k in TOP_REQUIRED:
        if doc.get(k) is None:
            out.invalid(k, "missing")

    amount = doc.get("amount")
    if amount is not None:
        if not is_number(amount):
            out.invalid("amount", f"not a number ({type_name(amount)})")
        else:
            digits = integer_digits(amount)
            if digits is None:
                out.invalid("amount", "not a positive whole number")
            elif digits.strip("0") == "":
                out.invalid("amount", "not positive")
            elif len(digits) > AMOUNT_MAX_DIGITS:
                out.invalid("amount", f"{len(digits)} digits")
            elif (max_amounts and isinstance(doc.get("currency"), str) and doc["currency"] in max_amounts
                  and int(digits) > max_amounts[doc["currency"]]):
                out.invalid("amount", f"above max_amount {max_amounts[doc['currency']]}")

    method = None
    m = doc.get("method")
    if m is not None:
        if not isinstance(m, str):
            out.invalid("method", "not a string")
        elif m not in methods:
            out.invalid("method", "unknown method")
        else:
            method = methods[m]

    currency = doc.get("currency")
    if currency is not None:
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            out.invalid("currency", "not three capital letters")
        elif method is not None and currency != method["currency"]:
            out.invalid("currency", f"method {method['code']} pays in {method['currency']}")
            out.fields.add("method")    # naming either one is fine

    if doc.get("description") is not None:
        check_text(doc["description"], "description", TEXT_LIMITS["description"], False, out)
    if doc.get("customer") is not None:
        check_customer(doc["customer"], out)
    if doc.get("metadata") is not None:
        check_metadata(doc["metadata"], out)
    if doc.get("recipient") is not None:
        check_recipient(doc["recipient"], method, out)
    return out


# ---------------------------------------------------------------- parsing

class _Reject(Exception):
    pass


def _no_constants(name):
    raise _Reject(f"JSON has no {name}")


def parse(text):
    """The document, as jsonb would read it (last duplicate key wins), or raise."""
    import json
    return json.loads(text, parse_float=Decimal, parse_int=Decimal,
                      parse_constant=_no_constants)


def _walk_strings_and_numbers(doc):
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                yield k
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)
        else:
            yield v


SURROGATE = re.compile("[\ud800-\udfff]")


def max_depth(text):
    """Deepest nesting of arrays and objects in JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def parse_verdict(text):
    """(state, doc, why): state "ok" (jsonb must accept it; doc is what it
    holds), "fail" (jsonb must refuse it) or "either" (doc is None when the
    model could not read it either).  Call it from a thread with a large
    stack: deeply nested text recurses in the json module."""
    if text is None:
        return "ok", None, "SQL NULL"
    try:
        doc = parse(text)
    except RecursionError:
        return "either", None, "nested too deep for the model"
    except (ValueError, _Reject) as e:
        return "fail", None, str(e)[:100]
    for v in _walk_strings_and_numbers(doc):
        if isinstance(v, str):
            if "\x00" in v:
                return "fail", None, "\\u0000 cannot be held by jsonb"
            if SURROGATE.search(v):
                return "fail", None, "unpaired surrogate"
    for v in _walk_strings_and_numbers(doc):
        if isinstance(v, Decimal):
            t = v.as_tuple()
            if abs(t.exponent) > 1000 or len(t.digits) > 1000:
                return "either", doc, "number beyond 1000 digits: numeric's range decides"
    if text.count("[") + text.count("{") > 1000 and max_depth(text) > 1000:
        return "either", doc, "nesting over 1000 levels: the server's stack decides"
    return "ok", doc, ""
