#!/usr/bin/env python3
"""Mock of the Moneroo payout API, for the moneroo extension's tests and benchmarks.

It speaks the API documented in moneroo-api.md (initialize, verify, retrieve,
the payout-method catalogue, the sandbox status machine and the 120/min rate
limit), and adds a control API under /__mock/ through which tests inject
faults (5xx, hangs, connection resets, garbage bodies) and read back what the
client really sent.

Standard library only (Python 3.11).  See --help for the command line and
test/mock/README.md for the control API.
"""

import argparse
import email.utils
import hashlib
import hmac
import http
import http.server
import json
import os
import random
import signal
import socket
import ssl
import string
import struct
import sys
import threading
import time
import traceback
import uuid
from array import array
from collections import Counter, deque
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 1024 * 1024          # larger request bodies get 413
IDLE_TIMEOUT = 300              # seconds an idle keep-alive connection is kept
TLS_HANDSHAKE_TIMEOUT = 10
RATE_WINDOW = 60.0              # Moneroo counts requests per minute

# --------------------------------------------------------------------------
# Catalogue: the 41 documented payout methods (moneroo-api.md section 4.2)
# --------------------------------------------------------------------------

# code: (name, currency, country, recipient field)
METHOD_TABLE = [
    ("airtel_cd", "Airtel Congo", "CDF", "CD", "msisdn"),
    ("airtel_mw", "Airtel Money Malawi", "MWK", "MW", "msisdn"),
    ("airtel_ng", "Airtel Money Nigeria", "NGN", "NG", "msisdn"),
    ("airtel_rw", "Airtel Rwanda", "RWF", "RW", "msisdn"),
    ("airtel_tz", "Airtel Tanzania", "TZS", "TZ", "msisdn"),
    ("airtel_ug", "Airtel Uganda", "UGX", "UG", "msisdn"),
    ("airtel_zm", "Airtel Zambia", "ZMW", "ZM", "msisdn"),
    ("djamo_ci", "Djamo CI", "XOF", "CI", "msisdn"),
    ("djamo_sn", "Djamo SN", "XOF", "SN", "msisdn"),
    ("e_money_sn", "E-Money Senegal", "XOF", "SN", "msisdn"),
    ("eu_mobile_cm", "EU Mobile Money Cameroon", "XAF", "CM", "msisdn"),
    ("freemoney_sn", "Free Money Senegal", "XOF", "SN", "msisdn"),
    ("halopesa_tz", "Halopesa", "TZS", "TZ", "msisdn"),
    ("moneroo_payout_demo", "Test Payout Method", "USD", "US", "account_number"),
    ("moov_bj", "Moov Money Benin", "XOF", "BJ", "msisdn"),
    ("moov_ci", "Moov Money CI", "XOF", "CI", "msisdn"),
    ("moov_tg", "Moov Money Togo", "XOF", "TG", "msisdn"),
    ("mpesa_ke", "M-Pesa Kenya", "KES", "KE", "msisdn"),
    ("mpesa_tz", "Vodacom Tanzania", "TZS", "TZ", "msisdn"),
    ("mtn_bj", "MTN MoMo Benin", "XOF", "BJ", "msisdn"),
    ("mtn_ci", "MTN MoMo CI", "XOF", "CI", "msisdn"),
    ("mtn_cm", "MTN MoMo Cameroon", "XAF", "CM", "msisdn"),
    ("mtn_gh", "MTN MoMo Ghana", "GHS", "GH", "msisdn"),
    ("mtn_ng", "MTN Nigeria", "NGN", "NG", "msisdn"),
    ("mtn_rw", "MTN MoMo Rwanda", "RWF", "RW", "msisdn"),
    ("mtn_ug", "MTN MoMo Uganda", "UGX", "UG", "msisdn"),
    ("mtn_zm", "MTN MoMo Zambia", "ZMW", "ZM", "msisdn"),
    ("orange_cd", "Orange Congo", "CDF", "CD", "msisdn"),
    ("orange_ci", "Orange Money CI", "XOF", "CI", "msisdn"),
    ("orange_cm", "Orange Money Cameroon", "XAF", "CM", "msisdn"),
    ("orange_ml", "Orange Money Mali", "XOF", "ML", "msisdn"),
    ("orange_sn", "Orange Money Senegal", "XOF", "SN", "msisdn"),
    ("tigo_gh", "Airtel/Tigo Ghana", "GHS", "GH", "msisdn"),
    ("tigo_tz", "Tigo Tanzania", "TZS", "TZ", "msisdn"),
    ("tnm_mw", "TNM Mpamba Malawi", "MWK", "MW", "msisdn"),
    ("togocel", "Togocel Money", "XOF", "TG", "msisdn"),
    ("vodacom_cd", "Vodacom Congo", "CDF", "CD", "msisdn"),
    ("vodafone_gh", "Vodafone Ghana", "GHS", "GH", "msisdn"),
    ("wave_ci", "Wave CI", "XOF", "CI", "msisdn"),
    ("wave_sn", "Wave Senegal", "XOF", "SN", "msisdn"),
    ("zamtel_zm", "Zamtel Kwacha", "ZMW", "ZM", "msisdn"),
]

# country: (name, ISO alpha-3, dial code digits)
COUNTRIES = {
    "BJ": ("Benin", "BEN", "229"),
    "CD": ("Democratic Republic of the Congo", "COD", "243"),
    "CI": ("Ivory Coast", "CIV", "225"),
    "CM": ("Cameroon", "CMR", "237"),
    "GH": ("Ghana", "GHA", "233"),
    "KE": ("Kenya", "KEN", "254"),
    "ML": ("Mali", "MLI", "223"),
    "MW": ("Malawi", "MWI", "265"),
    "NG": ("Nigeria", "NGA", "234"),
    "RW": ("Rwanda", "RWA", "250"),
    "SN": ("Senegal", "SEN", "221"),
    "TG": ("Togo", "TGO", "228"),
    "TZ": ("Tanzania", "TZA", "255"),
    "UG": ("Uganda", "UGA", "256"),
    "US": ("United States", "USA", "1"),
    "ZM": ("Zambia", "ZMB", "260"),
}

# currency: (name, symbol, decimals, subunit, plural name, native symbol)
CURRENCIES = {
    "CDF": ("Congolese Franc", "CDF", 2, "Centime", "Congolese francs", "FrCD"),
    "GHS": ("Ghanaian Cedi", "GHS", 2, "Pesewa", "Ghanaian cedis", "GH\u20b5"),
    "KES": ("Kenyan Shilling", "KES", 2, "Cent", "Kenyan shillings", "Ksh"),
    "MWK": ("Malawian Kwacha", "MWK", 2, "Tambala", "Malawian kwachas", "MK"),
    "NGN": ("Nigerian Naira", "NGN", 2, "Kobo", "Nigerian nairas", "\u20a6"),
    "RWF": ("Rwandan Franc", "RWF", 0, "Centime", "Rwandan francs", "FR"),
    "TZS": ("Tanzanian Shilling", "TZS", 2, "Cent", "Tanzanian shillings", "TSh"),
    "UGX": ("Ugandan Shilling", "UGX", 0, "Cent", "Ugandan shillings", "USh"),
    "USD": ("US Dollar", "$", 2, "Cent", "US dollars", "$"),
    "XAF": ("CFA Franc BEAC", "XAF", 0, "Centime", "CFA francs BEAC", "FCFA"),
    "XOF": ("CFA Franc BCEAO", "XOF", 0, "Centime", "CFA francs BCEAO", "CFA"),
    "ZMW": ("Zambian Kwacha", "ZMW", 2, "Ngwee", "Zambian kwachas", "ZK"),
}


class Method:
    __slots__ = ("code", "name", "currency", "country", "field", "dial_code")

    def __init__(self, code, name, currency, country, field):
        self.code, self.name, self.currency = code, name, currency
        self.country, self.field = country, field
        self.dial_code = COUNTRIES[country][2]


METHODS = {row[0]: Method(*row) for row in METHOD_TABLE}

# Sandbox test numbers (section 4.3).  Any other number fails.
TEST_OUTCOMES = {"4149518161": "success", "4149518162": "failed", "4149518163": "pending"}
FAILED_TEST_MESSAGE = "This is a failed test payout, you do not use valid test phone number."
GATEWAY_STATUS = {"pending": "test_pending", "success": "test_success", "failed": "test_failed"}

MOCK_APP = {
    "id": "01HMOCKAPP0000000000000000",
    "name": "Moneroo Mock",
    "website_url": "http://127.0.0.1",
    "icon_url": "https://assets.cdn.moneroo.io/samples/business.svg",
    "created_at": "2024-01-01T00:00:00.000000Z",
    "updated_at": "2024-01-01T00:00:00.000000Z",
    "is_enabled": True,
}

MSG_INITIALIZED = "Payout transaction initialized successfully"
MSG_VERIFIED = "Payout transaction fetched successfully!"
MSG_RETRIEVED = "Payout transaction fetched successfully"
MSG_METHODS = "Payout methods fetched successfully"
MSG_NOT_FOUND = "Payout transaction not found"

# Plausible Laravel-style messages for injected error statuses.
FAULT_MESSAGES = {
    400: "Malformed JSON.", 401: "Unauthenticated.", 403: "This action is unauthorized.",
    404: "Not Found.", 405: "Method Not Allowed.", 406: "Not Acceptable.",
    409: "Conflict.", 413: "Payload Too Large.", 422: "The selected method is invalid.",
    429: "Too Many Attempts.", 500: "Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}
FAULT_422_ERRORS = {"method": ["The selected method is invalid."]}
GARBAGE_BODY = b"<html>502 Bad Gateway</html>"

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_id(n=12):
    """Moneroo ids look like 'go86j8csuq51': 12 characters of [a-z0-9]."""
    return "".join(random.choices(_ID_ALPHABET, k=n))


def iso(ts):
    """Moneroo timestamps: '2023-12-26T22:04:50.000000Z' (always zero micros)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(ts))


def dumps(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def error_envelope(message, errors=None):
    return {"success": False, "message": message, "data": None, "errors": errors}


def is_blank(value):
    """Laravel's 'required' fails on null, '', whitespace and empty arrays."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (list, dict)):
        return len(value) == 0
    return False


def is_json_int(value):
    return type(value) is int      # excludes bool, which is an int subclass


def is_digit_string(value):
    return isinstance(value, str) and value.isascii() and value.isdigit()


def format_amount(amount, code):
    """'$ 500.00', 'XOF 1,000'.  Amounts are whole main units (section 7.2);
    integer formatting, because a float overflows on absurd amounts."""
    name, symbol, decimals = CURRENCIES[code][:3]
    return f"{symbol} {amount:,}" + ("." + "0" * decimals if decimals else "")


# --------------------------------------------------------------------------
# Request validation (POST /v1/payouts/initialize)
# --------------------------------------------------------------------------

def validate_initialize(body):
    """Return Laravel-style {"field": ["message", ...]}; empty when valid."""
    errors = {}

    def add(field, message):
        errors.setdefault(field, []).append(message)

    def required(field, value):
        if is_blank(value):
            add(field, f"The {field} field is required.")
            return False
        return True

    def required_string(field, value):
        if not required(field, value):
            return False
        if not isinstance(value, str):
            add(field, f"The {field} field must be a string.")
            return False
        return True

    amount = body.get("amount")
    if required("amount", amount):
        if not is_json_int(amount):
            add("amount", "The amount field must be an integer.")
        elif amount <= 0:
            add("amount", "The amount field must be greater than 0.")

    currency = body.get("currency")
    currency_ok = required_string("currency", currency)

    description = body.get("description")
    if required_string("description", description) and len(description) > 155:
        add("description", "The description field must not be greater than 155 characters.")

    method = None
    if required_string("method", body.get("method")):
        method = METHODS.get(body["method"])
        if method is None:
            add("method", "The selected method is invalid.")

    customer = body.get("customer")
    if required("customer", customer) and not isinstance(customer, dict):
        add("customer", "The customer field must be an array.")
    customer = customer if isinstance(customer, dict) else {}
    if required_string("customer.email", customer.get("email")) and "@" not in customer["email"]:
        add("customer.email", "The customer.email field must be a valid email address.")
    required_string("customer.first_name", customer.get("first_name"))
    required_string("customer.last_name", customer.get("last_name"))

    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, (dict, list)):
        add("metadata", "The metadata field must be an array.")

    if method is not None:
        if currency_ok and currency != method.currency:
            add("currency", f"The selected currency is invalid. The {method.code} method "
                            f"only supports {method.currency}.")
        recipient = body.get("recipient")
        if recipient is not None and not isinstance(recipient, dict):
            add("recipient", "The recipient field must be an array.")
        key = f"recipient.{method.field}"
        value = recipient.get(method.field) if isinstance(recipient, dict) else None
        if required(key, value) and not (
                (is_json_int(value) and value >= 0) or is_digit_string(value)):
            add(key, f"The {key} field must be an integer.")
    return errors


def validation_message(errors):
    """Laravel 10+: first message, plus '(and N more errors)'."""
    messages = [m for ms in errors.values() for m in ms]
    extra = len(messages) - 1
    if extra <= 0:
        return messages[0]
    return f"{messages[0]} (and {extra} more error{'s' if extra > 1 else ''})"


# --------------------------------------------------------------------------
# Payout records and their JSON shape (section 3.2)
# --------------------------------------------------------------------------

def new_payout(pid, body, raw, now):
    """A payout record.  It keeps the request's raw bytes, not the parsed body:
    a parsed body costs ~1.5 KB and benchmarks create hundreds of thousands."""
    method = METHODS[body["method"]]
    number = str(body["recipient"][method.field])
    metadata = body.get("metadata")
    return {
        "id": pid, "created": now, "raw": raw,
        "reference": metadata.get("payout_reference") if isinstance(metadata, dict) else None,
        "method": method, "number": number,
        "outcome": TEST_OUTCOMES.get(number, "failed"),
        "status": "initiated", "forced": False,
        "pending_at": None, "success_at": None, "failed_at": None,
        "customer_id": new_id(), "disburse_id": new_id(),
        "identifier": "pd_" + new_id(), "transaction_id": str(uuid.uuid4()),
    }


def settle_after(p, settings):
    """Seconds from creation to the payout's final status: final_after, or,
    with final_after_max above it, the payout's own time in between, drawn
    uniformly from a hash of its id (the same on every read, whatever the
    order of reads)."""
    low, high = settings["final_after"], settings.get("final_after_max")
    if high is None or high <= low:
        return low
    share = int.from_bytes(hashlib.sha256(p["id"].encode()).digest()[:8], "big") / 2.0 ** 64
    return low + share * (high - low)


def advance(p, now, settings):
    """Move a payout along initiated -> pending -> final, never backwards.

    Evaluated lazily on every read with the *current* delays, so a test that
    changes pending_after/final_after at run time also speeds up (or slows
    down) payouts that are already in flight.  Final states are sticky.
    """
    if p["forced"] or p["status"] in ("success", "failed"):
        return
    age = now - p["created"]
    pending_after = settings["pending_after"]
    final_after = max(settle_after(p, settings), pending_after)
    if p["status"] == "initiated" and age >= pending_after:
        p["status"] = "pending"
        p["pending_at"] = p["created"] + pending_after
    if p["status"] == "pending" and age >= final_after and p["outcome"] != "pending":
        p["status"] = p["outcome"]
        p[p["outcome"] + "_at"] = p["created"] + final_after


def force_status(p, status, now):
    p["status"], p["forced"] = status, True
    if status in ("pending", "success", "failed") and p["pending_at"] is None:
        p["pending_at"] = now
    if status in ("success", "failed") and p[status + "_at"] is None:
        p[status + "_at"] = now


def currency_object(code):
    name, symbol, decimals, subunit, plural, native = CURRENCIES[code]
    return {
        "name": name, "symbol": symbol, "symbol_first": True, "decimals": decimals,
        "decimal_mark": ".", "thousands_separator": ",", "subunit": subunit,
        "subunit_to_unit": 100, "symbol_native": native, "decimal_digits": decimals,
        "rounding": 0, "code": code, "name_plural": plural,
        "icon_url": f"https://assets.cdn.moneroo.io/currencies/{code}.svg",
    }


def render_payout(p, status=None):
    """The verify/retrieve 'data' object.  `status` overrides the reported
    status verbatim (verify_status fault) without touching the record."""
    body, method = json.loads(p["raw"]), p["method"]
    customer = body.get("customer") or {}
    reported = p["status"] if status is None else status
    created = iso(p["created"])
    failed = reported == "failed"
    return {
        "id": p["id"],
        "status": reported,
        "amount": body["amount"],
        "currency": currency_object(method.currency),
        "amount_formatted": format_amount(body["amount"], method.currency),
        "description": body["description"],
        "environment": "sandbox",
        # PHP serialises an empty metadata array as [], a filled one as {}.
        "metadata": body.get("metadata") or [],
        "app": MOCK_APP,
        "customer": {
            "id": p["customer_id"],
            "first_name": customer.get("first_name"),
            "last_name": customer.get("last_name"),
            "email": customer.get("email"),
            "phone": customer.get("phone"),
            "address": customer.get("address"),
            "city": customer.get("city"),
            "state": customer.get("state"),
            "country_code": customer.get("country"),
            "country": None,
            "zip_code": customer.get("zip"),
            "profile_url": None,
            "created_at": created,
            "updated_at": created,
        },
        "disburse": {
            "id": p["disburse_id"],
            "identifier": p["identifier"],
            "failure_message": FAILED_TEST_MESSAGE if failed else None,
            "failure_error_code": "failed" if failed else None,
            "failure_error_type": "test_payout" if failed else None,
            "method": {
                "id": "6zyu010zn6wo",
                "name": method.name,
                "short_code": method.code,
                "icon_url": f"https://assets.cdn.moneroo.io/icons/circle/{method.code}.svg",
            },
            "gateway": {
                "id": "8heokxp8yyxj",
                "account_name": "Moneroo Test Payout Gateway",
                "name": "Test Payout Gateway (Sandbox)",
                "short_code": "moneroo_payout_test",
                "icon_url": "https://assets.cdn.moneroo.io/icons/circle/moneroo.svg",
                "transaction_id": p["transaction_id"] if p["pending_at"] else None,
                "transaction_status": GATEWAY_STATUS.get(reported),
                # Non-null even on success, exactly like the real capture.
                "transaction_failure_message": FAILED_TEST_MESSAGE,
            },
        },
        "failed_at": iso(p["failed_at"]),
        "pending_at": iso(p["pending_at"]),
        "success_at": iso(p["success_at"]),
    }


def build_catalogue():
    """GET /utils/payout/methods, shaped like the Flutter SDK's model (4.1)."""
    items = []
    for m in METHODS.values():
        country_name, alpha3, dial = COUNTRIES[m.country]
        cur = CURRENCIES[m.currency]
        items.append({
            "name": m.name, "short_code": m.code, "description": None,
            "icon_url": f"https://assets.cdn.moneroo.io/icons/circle/{m.code}.svg",
            "is_enabled": True, "gateways": [],
            "fields": [{"label": "Phone number" if m.field == "msisdn" else "Account number",
                        "type": "integer", "name": m.field, "length": None}],
            "currency": {"name": cur[0], "symbol": cur[1], "code": m.currency,
                         "icon_url": f"https://assets.cdn.moneroo.io/currencies/{m.currency}.svg"},
            "countries": [{"name": country_name, "code": m.country, "alpha_3_code": alpha3,
                           "dial_code": "+" + dial, "currency": m.currency,
                           "currency_symbol": cur[5],
                           "flag": f"https://cdn.axazara.com/flags/svg/{m.country}.svg"}],
        })
    return dumps({"message": MSG_METHODS, "data": items, "errors": None})


CATALOGUE_BYTES = build_catalogue()

# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------

FAULT_KINDS = {"status", "status_after_create", "hang", "hang_before_create", "reset_before",
               "reset_after", "garbage", "garbage_json", "verify_status"}
# Which API routes each fault "route" value matches.  "verify" covers both
# ways of fetching a payout (verify and retrieve).
ROUTE_GROUPS = {
    "initialize": {"initialize"},
    "verify": {"verify", "retrieve"},
    "retrieve": {"retrieve"},
    "methods": {"methods"},
    "any": {"initialize", "verify", "retrieve", "methods"},
}


def normalize_fault(spec):
    """Check one fault description from POST /__mock/faults; raise ValueError."""
    if not isinstance(spec, dict):
        raise ValueError("a fault must be a JSON object")
    kind = spec.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
    fault = dict(spec)
    fault.setdefault("route", "verify" if kind == "verify_status" else "initialize")
    fault.setdefault("count", 1)
    if fault["route"] not in ROUTE_GROUPS:
        raise ValueError(f"unknown route {fault['route']!r}; one of {sorted(ROUTE_GROUPS)}")
    if not is_json_int(fault["count"]) or not (fault["count"] >= 1 or fault["count"] == -1):
        raise ValueError("count must be an integer >= 1, or -1 for unlimited")
    if kind == "status" and not is_json_int(fault.get("status")):
        raise ValueError("a 'status' fault needs an integer 'status'")
    if "status" in fault and not (is_json_int(fault["status"]) and 100 <= fault["status"] <= 599):
        raise ValueError("status must be an integer HTTP status")
    if kind in ("hang", "hang_before_create"):
        fault.setdefault("seconds", 60)
    if "seconds" in fault and (isinstance(fault["seconds"], bool)
                               or not isinstance(fault["seconds"], (int, float))
                               or fault["seconds"] < 0):
        raise ValueError("seconds must be a number >= 0")
    if kind == "verify_status" and "value" not in fault:
        raise ValueError("a 'verify_status' fault needs a 'value'")
    if kind == "garbage_json" and "body" not in fault:
        raise ValueError("a 'garbage_json' fault needs a 'body'")
    return fault


def fault_status_body(fault, default_status):
    """(status, body, extra headers) for an injected error answer."""
    status = fault.get("status", default_status)
    if status < 400:
        envelope = {"success": True, "message": fault.get("message", "OK"),
                    "data": None, "errors": None}
    else:
        errors = fault.get("errors", FAULT_422_ERRORS if status == 422 else None)
        envelope = error_envelope(fault.get("message", FAULT_MESSAGES.get(status, "Error")),
                                  errors)
    headers = [("Retry-After", "60")] if status == 429 else []
    return status, dumps(envelope), headers


# --------------------------------------------------------------------------
# Shared state (one lock)
# --------------------------------------------------------------------------

SETTING_TYPES = {"rate_limit": int, "latency_ms": float, "pending_after": float,
                 "final_after": float, "final_after_max": float, "journal_limit": int,
                 "secret_key": str}
# settings where null means "not set"
NULLABLE_SETTINGS = {"final_after_max"}


def check_settings(update):
    """Validate a POST /__mock/config body; return the cleaned dict."""
    if not isinstance(update, dict):
        raise ValueError("config must be a JSON object")
    clean = {}
    for key, value in update.items():
        kind = SETTING_TYPES.get(key)
        if kind is None:
            raise ValueError(f"unknown setting {key!r}; one of {sorted(SETTING_TYPES)}")
        if kind is str:
            # the one key the mock accepts (a rotated or revoked key); null: any key
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{key} must be a non-empty string or null")
            clean[key] = value
            continue
        if value is None and key in NULLABLE_SETTINGS:
            clean[key] = None
            continue
        ok_type = is_json_int(value) if kind is int else (
            isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok_type or value < 0:
            raise ValueError(f"{key} must be {'an integer' if kind is int else 'a number'} >= 0"
                             + (" or null" if key in NULLABLE_SETTINGS else ""))
        clean[key] = kind(value)
    return clean


class MockState:
    """Everything the handler threads share, guarded by self.lock."""

    def __init__(self, settings):
        self.lock = threading.Lock()
        self.startup = dict(settings)
        self.in_flight = 0          # API requests being handled right now
        self.connections = 0        # open client connections
        self.generation = 0
        self.wake = threading.Event()
        with self.lock:
            self._reset_locked()

    def _reset_locked(self):
        self.settings = dict(self.startup)
        self.generation += 1
        self.wake.set()             # let hang faults of the old generation finish now
        self.wake = threading.Event()
        self.payouts = {}
        self.faults = []
        self.journal = deque(maxlen=self.settings["journal_limit"] or None)
        self.seq = 0
        self.creates = 0
        self.rate_limited = 0       # 429s from the limiter (not injected ones)
        self.reference_counts = Counter()
        self.rate_window = deque()  # monotonic times of requests admitted by the limiter
        # Compact per-request arrays so stats stay exact however long the run
        # (the journal itself is capped by journal_limit).
        self.req_times = array("d")
        self.req_status = array("h")
        self.max_in_flight = self.in_flight
        self.max_connections = self.connections

    def reset(self):
        with self.lock:
            self._reset_locked()

    def configure(self, update):
        with self.lock:
            self.settings.update(update)
            if "journal_limit" in update:
                self.journal = deque(self.journal, maxlen=update["journal_limit"] or None)
            return dict(self.settings)

    def setting(self, key):
        with self.lock:
            return self.settings[key]

    # -- connections and requests ------------------------------------------------

    def connection_opened(self):
        with self.lock:
            self.connections += 1
            self.max_connections = max(self.max_connections, self.connections)

    def connection_closed(self):
        with self.lock:
            self.connections -= 1

    def begin(self, method, path, headers):
        """Journal an API request on arrival; return (entry, ticket)."""
        with self.lock:
            self.seq += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            now = time.time()
            entry = {"seq": self.seq, "time": now, "method": method, "path": path,
                     "headers": headers, "body": None, "status": None,
                     "created_id": None, "reference": None, "fault": None}
            self.journal.append(entry)
            self.req_times.append(now)
            self.req_status.append(0)
            return entry, (self.generation, self.seq - 1)

    def answered(self, entry, ticket, status):
        with self.lock:
            entry["status"] = status
            generation, index = ticket
            if generation == self.generation:
                self.req_status[index] = status

    def end(self):
        with self.lock:
            self.in_flight -= 1

    def admit(self):
        """Sliding-window rate limiter; False means answer 429.

        Only admitted requests enter the window, as with Laravel's throttle
        middleware: a client hammering us while limited does not extend it.
        """
        with self.lock:
            limit = self.settings["rate_limit"]
            if limit <= 0:
                return True
            now = time.monotonic()
            window = self.rate_window
            while window and window[0] <= now - RATE_WINDOW:
                window.popleft()
            if len(window) >= limit:
                self.rate_limited += 1
                return False
            window.append(now)
            return True

    def take_fault(self, route, payout_id):
        """Pop (one use of) the first queued fault matching this request."""
        with self.lock:
            for i, fault in enumerate(self.faults):
                if route not in ROUTE_GROUPS[fault["route"]]:
                    continue
                if fault["kind"] == "verify_status" and route not in ("verify", "retrieve"):
                    continue
                if fault.get("id") is not None and fault["id"] != payout_id:
                    continue
                if fault["count"] > 0:
                    fault["count"] -= 1
                    if fault["count"] == 0:
                        del self.faults[i]
                return dict(fault)
            return None

    def add_faults(self, faults):
        with self.lock:
            self.faults.extend(faults)
            return [dict(f) for f in self.faults]

    def list_faults(self):
        with self.lock:
            return [dict(f) for f in self.faults]

    def clear_faults(self):
        with self.lock:
            self.faults = []

    # -- payouts -------------------------------------------------------------------

    def create(self, body, raw):
        with self.lock:
            pid = new_id()
            while pid in self.payouts:
                pid = new_id()
            payout = new_payout(pid, body, raw, time.time())
            self.payouts[pid] = payout
            self.creates += 1
            if payout["reference"] is not None:
                self.reference_counts[json.dumps(payout["reference"])] += 1
            return pid, payout["reference"]

    def render(self, payout_id, status_override=None):
        """The payout's JSON object, or None when unknown."""
        with self.lock:
            payout = self.payouts.get(payout_id)
            if payout is None:
                return None
            advance(payout, time.time(), self.settings)
            return render_payout(payout, status_override)

    def set_status(self, payout_id, status):
        with self.lock:
            payout = self.payouts.get(payout_id)
            if payout is None:
                return False
            force_status(payout, status, time.time())
            return True

    def payout_list(self):
        """Parsing the stored bodies happens outside the lock."""
        with self.lock:
            now = time.time()
            out = []
            for p in self.payouts.values():
                advance(p, now, self.settings)
                out.append({"id": p["id"], "reference": p["reference"], "status": p["status"],
                            "created": p["created"], "raw": p["raw"]})
        for p in out:
            p["body"] = parse_body(p.pop("raw"))[0]
        return out

    # -- reporting -----------------------------------------------------------------

    def journal_since(self, since):
        with self.lock:
            entries = [dict(e) for e in self.journal if e["seq"] > since]
        for e in entries:       # bodies are journaled raw to save memory
            e["body"] = parse_body(e["body"])[0]
        return entries

    def stats(self):
        with self.lock:
            times, statuses = array("d", self.req_times), array("h", self.req_status)
            result = {
                "requests": self.seq,
                "creates": self.creates,
                "rate_limited": self.rate_limited,
                "duplicate_references": [json.loads(r) for r, n in
                                         sorted(self.reference_counts.items()) if n > 1],
                "max_concurrent": self.max_in_flight,
                "in_flight": self.in_flight,
                "max_connections": self.max_connections,
                "journal_dropped": self.seq - len(self.journal),
                "settings": dict(self.settings),
            }
        # The window scans run outside the lock: they are O(n log n).
        accepted = [t for t, s in zip(times, statuses) if s != 429]
        result["max_in_any_60s_window"] = max_in_window(sorted(times))
        result["max_accepted_in_any_60s_window"] = max_in_window(sorted(accepted))
        counts = Counter(statuses)
        result["status_counts"] = {str(s or "none"): n for s, n in sorted(counts.items())}
        return result


def max_in_window(sorted_times, width=RATE_WINDOW):
    """Largest number of timestamps inside any half-open window of `width` s."""
    best, start = 0, 0
    for end, t in enumerate(sorted_times):
        while sorted_times[start] <= t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


# --------------------------------------------------------------------------
# HTTP handling
# --------------------------------------------------------------------------

class BodyError(Exception):
    """The request body cannot be read: answer `status` and close."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def match_route(path):
    """Map a path to (route name, payout id, allowed methods); (None,)*3 = 404."""
    if path in ("/utils/payout/methods", "/v1/utils/payout/methods"):
        return "methods", None, ("GET",)
    if path == "/v1/payouts/initialize":
        return "initialize", None, ("POST",)
    if path.startswith("/v1/payouts/"):
        rest = path[len("/v1/payouts/"):].split("/")
        if len(rest) == 1 and rest[0]:
            return "retrieve", unquote(rest[0]), ("GET",)
        if len(rest) == 2 and rest[0] and rest[1] == "verify":
            return "verify", unquote(rest[0]), ("GET",)
    return None, None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "moneroo-mock"
    timeout = IDLE_TIMEOUT

    # -- connection life cycle -------------------------------------------------

    def setup(self):
        # Responses go out in one write, but without TCP_NODELAY a pipelining
        # client still risks the 40 ms Nagle/delayed-ACK stall.
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        super().setup()
        self.state = self.server.state
        self.state.connection_opened()

    def finish(self):
        self.state.connection_closed()
        try:
            super().finish()
        except OSError:
            pass

    def handle(self):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow or broken client cannot stall the accept loop.
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.settimeout(TLS_HANDSHAKE_TIMEOUT)
                self.connection.do_handshake()
                self.connection.settimeout(self.timeout)
            except (OSError, ValueError):
                self.close_connection = True
                return
        super().handle()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")

    # -- low-level I/O ----------------------------------------------------------------

    def write_response(self, status, body=b"", ctype="application/json", headers=(), close=False):
        """Send the whole response in a single write (keeps latency low)."""
        if close:
            self.close_connection = True
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {status} {reason}",
                 f"Server: {self.server_version}",
                 f"Date: {email.utils.formatdate(usegmt=True)}",
                 f"Content-Type: {ctype}",
                 f"Content-Length: {len(body)}",
                 "Connection: " + ("close" if self.close_connection else "keep-alive")]
        lines.extend(f"{k}: {v}" for k, v in headers)
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += body
        self.wfile.write(data)
        if self.server.verbose:
            self.log_request(status, len(body))

    def send_error(self, code, message=None, explain=None):
        """Protocol errors found by BaseHTTPRequestHandler (bad request line,
        headers too large, unknown verb...): a JSON envelope, then close."""
        try:
            self.write_response(code, dumps(error_envelope(message or FAULT_MESSAGES.get(
                code, http.HTTPStatus(code).phrase))), close=True)
        except (OSError, ValueError):
            self.close_connection = True

    def abort_connection(self):
        """Close with SO_LINGER 0 so the client sees a TCP RST, not a FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The fd is really closed (RST sent) only once rfile drops its reference,
        # and it must go before socketserver's shutdown(SHUT_WR) sends a FIN.
        for closer in (self.rfile.close, self.connection.close):
            try:
                closer()
            except OSError:
                pass

    def read_body(self):
        """Read the request body (Content-Length or chunked), capped at MAX_BODY."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            raise BodyError(400, "Invalid Content-Length.")
        if n > MAX_BODY:
            raise BodyError(413, "Payload Too Large.")
        data = self.rfile.read(n)
        if len(data) < n:
            raise ConnectionResetError("client closed before sending the body")
        return data

    def _read_chunked(self):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionResetError("client closed inside a chunked body")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError(400, "Malformed chunked body.")
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise BodyError(413, "Payload Too Large.")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)          # CRLF after the chunk
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass                                # trailers
        return b"".join(chunks)

    # -- dispatch ---------------------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self):
        path = urlsplit(self.path).path.rstrip("/") or "/"
        try:
            if path == "/__mock" or path.startswith("/__mock/"):
                self.handle_control(path)
            else:
                self.handle_api(path)
        except (OSError, ssl.SSLError):
            self.close_connection = True       # client went away: nothing to answer
        except Exception:
            traceback.print_exc()              # a mock bug: make it visible
            try:
                self.write_response(500, dumps(error_envelope("Mock internal error")),
                                    close=True)
            except OSError:
                self.close_connection = True

    # -- the Moneroo API --------------------------------------------------------

    def handle_api(self, path):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        entry, ticket = self.state.begin(self.command, self.path, headers)
        self.entry, self.ticket = entry, ticket
        try:
            route, payout_id, allowed = match_route(path)
            if route is None:
                self.discard_body()
                self.api_answer(404, dumps(error_envelope("Not Found.")))
            elif self.command not in allowed:
                self.discard_body()
                self.api_answer(405, dumps(error_envelope("Method Not Allowed.")),
                                headers=[("Allow", ", ".join(allowed))])
            else:
                self.handle_route(route, payout_id)
        except BodyError as e:
            self.api_answer(e.status, dumps(error_envelope(e.message)), close=True)
        finally:
            self.state.end()

    def discard_body(self):
        self.entry["body"] = self.read_body()

    def api_answer(self, status, body, ctype="application/json", headers=(), close=False):
        """Answer an API request after the configured latency, and journal it."""
        latency = self.state.setting("latency_ms")
        if latency > 0:
            time.sleep(latency / 1000.0)
        self.write_response(status, body, ctype, headers, close)
        self.state.answered(self.entry, self.ticket, status)

    def handle_route(self, route, payout_id):
        if not self.state.admit():
            self.discard_body()     # keep the connection usable, process nothing
            self.api_answer(429, dumps(error_envelope("Too Many Attempts.")),
                            headers=[("Retry-After", "60")])
            return
        fault = self.state.take_fault(route, payout_id)
        kind = fault["kind"] if fault else None
        self.entry["fault"] = kind
        if kind == "reset_before":
            self.abort_connection()
            return
        raw = self.read_body()
        parsed, is_json = parse_body(raw)
        self.entry["body"] = raw
        if kind == "hang_before_create":
            self.state.wake.wait(fault["seconds"])
            self.close_connection = True
            return
        if kind == "status":
            status, body, headers = fault_status_body(fault, 500)
            self.api_answer(status, body, headers=headers)
            return

        override = fault["value"] if kind == "verify_status" else None
        status, body = self.process(route, payout_id, raw, parsed, is_json, override)
        self.deliver(route, status, body, fault)

    def deliver(self, route, status, body, fault):
        """Send the normal answer, or what the fault makes of it."""
        kind = fault["kind"] if fault else None
        if kind in (None, "verify_status"):
            self.api_answer(status, body)
        elif kind == "status_after_create":
            status, body, headers = fault_status_body(fault, 500)
            self.api_answer(status, body, headers=headers)
        elif kind == "hang":
            self.state.wake.wait(fault["seconds"])
            self.api_answer(status, body)
        elif kind == "reset_after":
            self.abort_connection()
        elif kind == "garbage":
            default = 201 if route == "initialize" else 200
            self.api_answer(fault.get("status", default), GARBAGE_BODY, ctype="text/html")
        elif kind == "garbage_json":
            default = 201 if route == "initialize" else 200
            raw = fault["body"]
            # surrogatepass: tests may send deliberately broken "\ud800" text.
            raw = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else dumps(raw)
            self.api_answer(fault.get("status", default), raw)

    def process(self, route, payout_id, raw, body, is_json, status_override):
        """Do what Moneroo would do; return (status, response bytes)."""
        if route == "methods":
            return 200, CATALOGUE_BYTES
        if not self.authorized():
            return 401, dumps(error_envelope("Unauthenticated."))
        if route == "initialize":
            return self.initialize(raw, body, is_json)
        data = self.state.render(payout_id, status_override)
        if data is None:
            return 404, dumps(error_envelope(MSG_NOT_FOUND))
        if route == "verify":
            # The documented verify capture has no "success" key.
            return 200, dumps({"message": MSG_VERIFIED, "data": data, "errors": None})
        return 200, dumps({"success": True, "message": MSG_RETRIEVED, "data": data,
                           "errors": None})

    def authorized(self):
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        key = self.state.setting("secret_key")
        return key is None or hmac.compare_digest(token.encode(), key.encode())

    def initialize(self, raw, body, is_json):
        if not is_json or not isinstance(body, dict):
            return 400, dumps(error_envelope("Malformed JSON."))
        errors = validate_initialize(body)
        if errors:
            return 422, dumps(error_envelope(validation_message(errors), errors))
        payout_id, reference = self.state.create(body, raw)
        self.entry["created_id"], self.entry["reference"] = payout_id, reference
        return 201, dumps({"success": True, "message": MSG_INITIALIZED,
                           "data": {"id": payout_id}, "errors": None})

    # -- the control API --------------------------------------------------------

    def handle_control(self, path):
        try:
            raw = self.read_body()
        except BodyError as e:
            self.write_response(e.status, dumps({"error": e.message}), close=True)
            return
        query = parse_qs(urlsplit(self.path).query)
        try:
            status, obj = self.control(path, self.command, raw, query)
        except ValueError as e:
            status, obj = 400, {"error": str(e)}
        self.write_response(status, dumps(obj))

    def control(self, path, method, raw, query):
        name = path[len("/__mock/"):]
        routes = {
            "health": ("GET",), "reset": ("POST",), "config": ("GET", "POST"),
            "faults": ("GET", "POST", "DELETE"), "journal": ("GET",), "payouts": ("GET",),
            "stats": ("GET",), "set_status": ("POST",),
        }
        if name not in routes:
            return 404, {"error": f"unknown control endpoint {path}"}
        if method not in routes[name]:
            return 405, {"error": f"{path} accepts {', '.join(routes[name])}"}
        state = self.state

        if name == "health":
            return 200, {"ok": True}
        if name == "reset":
            state.reset()
            return 200, {"ok": True}
        if name == "config":
            if method == "GET":
                return 200, {"ok": True, "config": state.configure({})}
            return 200, {"ok": True, "config": state.configure(check_settings(json_body(raw)))}
        if name == "faults":
            if method == "GET":
                return 200, {"ok": True, "faults": state.list_faults()}
            if method == "DELETE":
                state.clear_faults()
                return 200, {"ok": True, "faults": []}
            spec = json_body(raw)
            specs = spec if isinstance(spec, list) else [spec]
            faults = [normalize_fault(s) for s in specs]   # all or nothing
            return 200, {"ok": True, "faults": state.add_faults(faults)}
        if name == "journal":
            try:
                since = int(query.get("since", ["0"])[0])
            except ValueError:
                raise ValueError("since must be an integer")
            return 200, state.journal_since(since)
        if name == "payouts":
            return 200, state.payout_list()
        if name == "stats":
            return 200, state.stats()
        # set_status
        spec = json_body(raw)
        if not isinstance(spec, dict) or not isinstance(spec.get("id"), str) \
                or "status" not in spec:
            raise ValueError('expected {"id": "...", "status": ...}')
        if not state.set_status(spec["id"], spec["status"]):
            return 404, {"error": f"no payout {spec['id']!r}"}
        return 200, {"ok": True}


def parse_body(raw):
    """(value for the journal, is-valid-JSON): parsed JSON, raw text or None."""
    if not raw:
        return None, False
    try:
        return json.loads(raw), True
    except Exception:               # bad UTF-8, bad JSON, absurd nesting...
        return raw.decode("utf-8", "replace"), False


def json_body(raw):
    value, ok = parse_body(raw)
    if not ok:
        raise ValueError("body must be JSON")
    return value


# --------------------------------------------------------------------------
# Server and command line
# --------------------------------------------------------------------------

class MockServer(http.server.ThreadingHTTPServer):
    daemon_threads = True           # hung handlers must not block exit
    request_queue_size = 1024       # benchmarks open 150+ connections at once
    allow_reuse_address = True

    def __init__(self, address, state, verbose):
        self.state, self.verbose = state, verbose
        super().__init__(address, Handler)

    def handle_error(self, request, client_address):
        # Clients vanishing mid-request is routine in fault tests; stay quiet.
        if isinstance(sys.exc_info()[1], (OSError, ValueError)) and not self.verbose:
            return
        super().handle_error(request, client_address)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Mock of the Moneroo payout API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    p.add_argument("--portfile", help="write the bound port to this file")
    p.add_argument("--pidfile", help="write the process id to this file")
    p.add_argument("--secret-key", help="accept only this Bearer token (default: any)")
    p.add_argument("--rate-limit", type=int, default=120,
                   help="API requests per sliding 60 s window; 0 = unlimited (default 120)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay every API answer")
    p.add_argument("--pending-after", type=float, default=0.3,
                   help="seconds from initiated to pending (default 0.3)")
    p.add_argument("--final-after", type=float, default=0.8,
                   help="seconds from creation to success/failed (default 0.8)")
    p.add_argument("--final-after-max", type=float, default=None,
                   help="spread settle times: each payout ends at its own time between "
                        "--final-after and this (uniform, from a hash of its id; default: "
                        "every payout at --final-after)")
    p.add_argument("--journal-limit", type=int, default=100000,
                   help="keep at most this many journal entries; 0 = unlimited")
    p.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    for name in ("rate_limit", "latency_ms", "pending_after", "final_after", "final_after_max",
                 "journal_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def write_file_atomically(path, text):
    """Readers polling for the file never see it half-written."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    settings = {"rate_limit": args.rate_limit, "latency_ms": args.latency_ms,
                "pending_after": args.pending_after, "final_after": args.final_after,
                "final_after_max": args.final_after_max,
                "journal_limit": args.journal_limit, "secret_key": args.secret_key}
    state = MockState(settings)
    server = MockServer((args.host, args.port), state, args.verbose)
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
        scheme = "https"
    port = server.server_address[1]

    # The socket already listens, so anyone reading the files can connect.
    if args.pidfile:
        write_file_atomically(args.pidfile, f"{os.getpid()}\n")
    if args.portfile:
        write_file_atomically(args.portfile, f"{port}\n")
    print(f"listening on {scheme}://{args.host}:{port}", flush=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
        for path in (args.pidfile, args.portfile):
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
