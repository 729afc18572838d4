#!/usr/bin/env python3
"""Generate Volcengine V4 (HMAC-SHA256) signing test vectors with the official SDK.

Every value under "expected" comes out of the SDK's own code:

* volcenginesdkcore.signv4.SignerV4.sign does the signing.  Its intermediates
  are taken from the SDK's own debug-log calls (sdk_core_logger.debug_sign:
  body sha256, canonical request, string to sign, signature, Authorization),
  from wrapping SignerV4.hmac_sha256 (kDate/kRegion/kService/kSigning, in the
  order get_signing_secret_key_v4 computes them) and from
  SignerV4.canonical_query.  canonical_headers / signed_headers / credential
  scope / hashed canonical request are cut out of the SDK's canonical request
  and string to sign, not recomputed.
* "signer" cases call SignerV4.sign directly with the headers a minimal client
  sends (Content-Type, Host) and body = json.dumps(body), exactly as
  SignRequestInterceptor.update_params_for_auth does.
* "client" cases run the full SDK client (McdnApi / UniversalApi -> interceptor
  chain -> rest.RESTClientObject) against a fake urllib3 pool manager, so the
  recorded headers/url/body are what the SDK would put on the wire.
* The classic `volcengine` package's SignerV4.sign_only signs the same request
  as a cross-check (expected.classic_volcengine_signature).

The clock (datetime.utcnow in volcenginesdkcore.signv4) and the per-request
invocation id (uuid4 in the interceptor Request) are pinned; nothing else is
patched and nothing is sent anywhere.

Usage (see testdata/signing/volcengine/README.md):
    /tmp/vectors-venv/bin/python tools/vectors/volcengine.py [OUTPUT_DIR]
OUTPUT_DIR defaults to testdata/signing/volcengine relative to the repo root.
"""
import collections
import datetime as _dt
import hashlib
import hmac
import json
import logging
import os
import sys
import types
import uuid

# This file is named volcengine.py; drop its own directory from sys.path so
# that "import volcengine" resolves to the SDK package, not to this script.
sys.path = [p for p in sys.path
            if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import volcenginesdkcore  # noqa: E402
import volcenginesdkcore.signv4 as signv4_mod  # noqa: E402
import volcenginesdkcore.interceptor.interceptors.request as request_mod  # noqa: E402
from volcenginesdkcore.signv4 import SignerV4  # noqa: E402
from volcenginesdkcore.observability.debugger import sdk_core_logger  # noqa: E402
from volcenginesdkcore.configuration import SDK_HANDLER_FLAG  # noqa: E402
from volcenginesdkcore.rest import urlencode as sdk_urlencode  # noqa: E402
from volcenginesdkcore.universal import UniversalApi, UniversalInfo  # noqa: E402
import volcenginesdkmcdn  # noqa: E402
from volcengine.auth.SignerV4 import SignerV4 as ClassicSignerV4  # noqa: E402
from volcengine.auth.SignParam import SignParam as ClassicSignParam  # noqa: E402
from volcengine.Credentials import Credentials as ClassicCredentials  # noqa: E402

try:
    from importlib.metadata import version as pkg_version
except ImportError:  # pragma: no cover
    pkg_version = None

AK = "AKLTexampleAccessKeyId"
SK = "exampleSecretKey=="
STS_AK = "AKTPexampleStsAccessKeyId"
STS_SK = "exampleStsSecretKey=="
STS_TOKEN = "STSeyJBY2NvdW50SWQiOjIxMDAwMDAwMDAsImV4YW1wbGUiOnRydWV9.example-token"
REGION = "cn-north-1"
SERVICE = "mcdn"
VERSION = "2022-03-01"
HOST = "open.volcengineapi.com"
FIXED_INVOCATION_ID = "00000000-0000-4000-8000-000000000001"


# ---------------------------------------------------------------- pinning ---
class _Clock(object):
    now = None


class _FixedDatetime(_dt.datetime):
    @classmethod
    def utcnow(cls):
        return _Clock.now

    @classmethod
    def now(cls, tz=None):
        return _Clock.now if tz is None else _Clock.now.replace(tzinfo=tz)


# volcenginesdkcore.signv4 does "import datetime; datetime.datetime.utcnow()".
signv4_mod.datetime = types.SimpleNamespace(datetime=_FixedDatetime)
# Request.__init__ does "self.invocation_id = str(uuid.uuid4())".
request_mod.uuid = types.SimpleNamespace(uuid4=lambda: uuid.UUID(FIXED_INVOCATION_ID))


# ---------------------------------------------------------------- capture ---
class _LogCapture(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.msg, record.args))


LOG = _LogCapture()
sdk_core_logger.setLevel(logging.DEBUG)
sdk_core_logger.addHandler(LOG)
sdk_core_logger.set_log_level(sdk_core_logger.get_log_level())  # LOG_DEBUG_ALL mask (SDK default)

SIGN_CALLS = []
_orig_sign = SignerV4.sign
_orig_hmac = SignerV4.hmac_sha256


def _wrapped_sign(path, method, headers, body, post_params, query, ak, sk, region, service,
                  session_token=None):
    call = {
        "path": path, "method": method, "headers_in": list(headers.items()),
        "body": body, "query": list(query), "ak": ak, "sk": sk, "region": region,
        "service": service, "session_token": session_token, "hmac": [], "log": [],
    }
    SIGN_CALLS.append(call)
    LOG.records = []
    _orig_sign(path, method, headers, body, post_params, query, ak, sk, region, service,
               session_token)
    call["log"] = list(LOG.records)
    call["headers_out"] = list(headers.items())
    return None


def _wrapped_hmac(key, msg):
    out = _orig_hmac(key, msg)
    if SIGN_CALLS:
        SIGN_CALLS[-1]["hmac"].append((msg, out))
    return out


SignerV4.sign = staticmethod(_wrapped_sign)
SignerV4.hmac_sha256 = staticmethod(_wrapped_hmac)


def _log_value(call, prefix):
    for msg, args in call["log"]:
        if msg == "[Sign] " + prefix:
            return args[0] if len(args) == 1 else args
    raise KeyError(prefix)


class _FakeHTTPResponse(object):
    status = 200
    reason = "OK"

    def __init__(self, action):
        self.data = json.dumps({"ResponseMetadata": {
            "RequestID": "fake", "Action": action, "Version": VERSION,
            "Service": SERVICE, "Region": REGION}, "Result": {}}).encode("utf-8")
        self.headers = {"Content-Type": "application/json"}


class _FakePoolManager(object):
    connection_pool_kw = {}

    def __init__(self):
        self.sent = []

    def request(self, method, url, body=None, fields=None, encode_multipart=None,
                preload_content=True, timeout=None, headers=None):
        self.sent.append({"method": method, "url": url, "body": body,
                          "headers": list(headers.items())})
        action = url.split("Action=")[1].split("&")[0]
        return _FakeHTTPResponse(action)


def _client(host, ak, sk, session_token):
    cfg = volcenginesdkcore.Configuration()
    cfg.ak = ak
    cfg.sk = sk
    if session_token:
        cfg.session_token = session_token
    cfg.region = REGION
    cfg.host = host
    cfg.auto_retry = False
    api_client = volcenginesdkcore.ApiClient(cfg)
    # Configuration() attaches a console handler to the SDK logger; keep only ours.
    for h in list(sdk_core_logger.handlers):
        if getattr(h, SDK_HANDLER_FLAG, False):
            sdk_core_logger.removeHandler(h)
    sdk_core_logger.setLevel(logging.DEBUG)
    pool = _FakePoolManager()
    api_client.rest_client.pool_manager = pool
    return api_client, pool


# ---------------------------------------------------------------- builders ---
def _iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _classic_signature(call, x_date_dt):
    """Cross-check: classic `volcengine` package signer over the same request."""
    param = ClassicSignParam()
    param.set_method(call["method"])
    param.set_path(call["path"])
    param.set_body(call["body"])
    param.set_query(collections.OrderedDict(call["query"]))
    param.set_date(x_date_dt)
    param.set_header_list(collections.OrderedDict(call["headers_in"]))
    cred = ClassicCredentials(call["ak"], call["sk"], call["service"], call["region"],
                              call["session_token"] or "")
    return ClassicSignerV4.sign_only(param, cred)


def build_case(name, description, source, sdk_call, host, when, call, sent):
    headers_out = dict(call["headers_out"])
    canonical_request = _log_value(call, "canonical_request:\n%s")
    string_to_sign = _log_value(call, "string_to_sign:\n%s")
    signature = _log_value(call, "calculated signature: %s")
    authorization = _log_value(call, "final Authorization header: %s")
    body_sha = _log_value(call, "calculated body sha256: %s")
    cr_lines = canonical_request.split("\n")
    # method, path, query, <header lines...>, "", signed headers, payload hash
    assert cr_lines[-3] == "", name
    canonical_headers = "\n".join(cr_lines[3:-3]) + "\n"
    signed_headers = cr_lines[-2]
    sts_lines = string_to_sign.split("\n")
    assert len(sts_lines) == 4 and sts_lines[0] == "HMAC-SHA256", name
    x_date = sts_lines[1]
    credential_scope = sts_lines[2]
    hashed_canonical_request = sts_lines[3]
    assert [m for m, _ in call["hmac"]] == [credential_scope[:8], call["region"],
                                           call["service"], "request"], name
    k_date, k_region, k_service, k_signing = (o.hex() for _, o in call["hmac"])
    canonical_query = SignerV4.canonical_query(dict(call["query"]))
    assert cr_lines[2] == canonical_query, name

    # Independent re-check (hashlib/hmac only; the recorded values are the SDK's).
    assert hashlib.sha256(call["body"].encode("utf-8")).hexdigest() == body_sha
    assert hashlib.sha256(canonical_request.encode("utf-8")).hexdigest() == hashed_canonical_request
    k = call["sk"].encode("utf-8")
    for part in (credential_scope[:8], call["region"], call["service"], "request"):
        k = hmac.new(k, part.encode("utf-8"), hashlib.sha256).digest()
    assert k.hex() == k_signing
    assert hmac.new(k, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest() == signature
    assert headers_out["X-Content-Sha256"] == body_sha
    assert headers_out["X-Date"] == x_date == when.strftime("%Y%m%dT%H%M%SZ")
    assert headers_out["Authorization"] == authorization

    classic = _classic_signature(call, when)
    assert classic.xSignature == signature, (name, classic.xSignature, signature)
    assert classic.authorization == authorization, name

    if sent is None:
        # Signer cases: what rest.RESTClientObject would put on the wire.
        url = "https://" + host + call["path"] + "?" + sdk_urlencode(call["query"])
        headers_sent = call["headers_out"]
        body_sent = call["body"]
    else:
        url = sent["url"]
        headers_sent = sent["headers"]
        body_sent = sent["body"]
    assert body_sent == call["body"], name
    signed_names = signed_headers.split(";")

    return {
        "input": {
            "case_name": name,
            "description": description,
            "source": source,
            "sdk_call": sdk_call,
            "method": call["method"],
            "scheme": "https",
            "host": host,
            "path": call["path"],
            "query": [[k, v] for k, v in call["query"]],
            "headers": [[k, v] for k, v in call["headers_in"]],
            "body": call["body"],
            "access_key_id": call["ak"],
            "secret_access_key": call["sk"],
            "session_token": call["session_token"],
            "region": call["region"],
            "service": call["service"],
            "timestamp": _iso(when),
        },
        "expected": {
            "x_date": x_date,
            "x_content_sha256": body_sha,
            "canonical_query": canonical_query,
            "canonical_headers": canonical_headers,
            "signed_headers": signed_headers,
            "canonical_request": canonical_request,
            "hashed_canonical_request": hashed_canonical_request,
            "credential_scope": credential_scope,
            "string_to_sign": string_to_sign,
            "k_date": k_date,
            "k_region": k_region,
            "k_service": k_service,
            "k_signing": k_signing,
            "signature": signature,
            "authorization": authorization,
            "headers_sent": [[k, v] for k, v in headers_sent],
            "headers_sent_signed": [k for k, _ in headers_sent if k.lower() in signed_names],
            "headers_sent_unsigned": [k for k, _ in headers_sent if k.lower() not in signed_names],
            "url": url,
            "body_sent": body_sent,
            "classic_volcengine_signature": classic.xSignature,
        },
    }


def signer_case(name, description, action, body_obj, when, host=HOST, ak=AK, sk=SK,
                session_token=None, source="synthetic"):
    """SignerV4.sign exactly as SignRequestInterceptor.update_params_for_auth calls it."""
    _Clock.now = when
    del SIGN_CALLS[:]
    headers = collections.OrderedDict([("Content-Type", "application/json"), ("Host", host)])
    query = [("Action", action), ("Version", VERSION)]
    body = json.dumps(body_obj)  # same call as update_params_for_auth and rest.request
    SignerV4.sign("/", "POST", headers, body, [], query, ak, sk, REGION, SERVICE, session_token)
    assert len(SIGN_CALLS) == 1
    return build_case(name, description, source, "volcenginesdkcore.signv4.SignerV4.sign",
                      host, when, SIGN_CALLS[0], None)


def client_case(name, description, when, invoke, host=HOST, ak=AK, sk=SK, session_token=None,
                sdk_call=""):
    _Clock.now = when
    del SIGN_CALLS[:]
    api_client, pool = _client(host, ak, sk, session_token)
    invoke(api_client)
    assert len(SIGN_CALLS) == 1 and len(pool.sent) == 1, name
    return build_case(name, description, "synthetic", sdk_call, host, when, SIGN_CALLS[0],
                      pool.sent[0])


# ------------------------------------------------------------------ cases ---
T0 = _dt.datetime(2024, 2, 19, 3, 23, 34)   # X-Date 20240219T032334Z (example date in vendors.md)
T1 = _dt.datetime(2025, 1, 1, 0, 0, 5)      # just after midnight: scope date follows UTC
START, END = 1708226614, 1708313014         # T0 - 24h, T0


def cases():
    out = []
    lct_body = {"TaskType": "refresh_file", "StartTime": START, "EndTime": END,
                "Pagination": {"PageNum": 1, "PageSize": 100}}
    out.append(signer_case(
        "list-content-tasks-basic",
        "ListContentTasks, time window + paging, minimal header set (Content-Type, Host).",
        "ListContentTasks", lct_body, T0))
    out.append(signer_case(
        "list-content-tasks-local-port",
        "Same request against a test server: Host 127.0.0.1:18080 is signed with its port.",
        "ListContentTasks", lct_body, T0, host="127.0.0.1:18080"))
    out.append(signer_case(
        "list-content-tasks-port-443-stripped",
        "Host header open.volcengineapi.com:443: the SDK signs host without :443 "
        "but sends the header unchanged.",
        "ListContentTasks", {"Pagination": {"PageNum": 2, "PageSize": 100}}, T0,
        host="open.volcengineapi.com:443"))
    out.append(signer_case(
        "list-content-task-deprecated",
        "Deprecated ListContentTask action (same body shape), preload filter.",
        "ListContentTask", {"TaskType": "preload", "StartTime": START, "EndTime": END,
                            "Pagination": {"PageNum": 1, "PageSize": 100}}, T0))
    out.append(signer_case(
        "describe-content-quota",
        "DescribeContentQuota with a comma-separated CloudAccountId list.",
        "DescribeContentQuota", {"CloudAccountId": "6452aa8fd4bd8e6d5f8b4567,6452aa8fd4bd8e6d5f8b4568"},
        T1))
    out.append(signer_case(
        "list-content-tasks-sts",
        "STS credentials: X-Security-Token is sent and signed.",
        "ListContentTasks", lct_body, T0, ak=STS_AK, sk=STS_SK, session_token=STS_TOKEN))
    out.append(signer_case(
        "list-content-tasks-empty-body",
        "Empty JSON object body '{}' (all filters omitted).",
        "ListContentTasks", {}, T1))
    out.append(signer_case(
        "list-content-tasks-non-ascii-url",
        "Url filter with space, '*', '~' and non-ASCII: json.dumps escapes non-ASCII as \\uXXXX "
        "(ensure_ascii=True); the hash is over those ASCII bytes.",
        "ListContentTasks", {"Url": "https://www.example.com/路径/a b*~.jpg?x=1&y=é",
                             "TaskType": "refresh_file",
                             "Pagination": {"PageNum": 1, "PageSize": 10}}, T0))

    def invoke_lct(api_client):
        api = volcenginesdkmcdn.MCDNApi(api_client)
        api.list_content_tasks(volcenginesdkmcdn.ListContentTasksRequest(
            task_type="refresh_file", start_time=START, end_time=END,
            pagination=volcenginesdkmcdn.PaginationForListContentTasksInput(page_num=1, page_size=100)))
    out.append(client_case(
        "client-list-content-tasks",
        "Full SDK client path (MCDNApi.list_content_tasks, auto_retry off). The SDK adds "
        "User-Agent, Accept and X-Sdk-Invocation-Id / X-Sdk-Request; every X-* header is signed. "
        "Body keys come out in the model's alphabetical attribute order.",
        T0, invoke_lct, sdk_call="volcenginesdkmcdn.MCDNApi.list_content_tasks"))

    def invoke_universal(api_client):
        UniversalApi(api_client).do_call(
            UniversalInfo(method="POST", service=SERVICE, version=VERSION, action="ListContentTask",
                          content_type="application/json"),
            {"TaskType": "preload", "StartTime": START, "EndTime": END,
             "Pagination": {"PageNum": 1, "PageSize": 100}})
    out.append(client_case(
        "client-universal-list-content-task-sts-local-port",
        "Full SDK client path (UniversalApi.do_call, deprecated ListContentTask) with STS token "
        "against host 127.0.0.1:18080.",
        T0, invoke_universal, host="127.0.0.1:18080", ak=STS_AK, sk=STS_SK,
        session_token=STS_TOKEN, sdk_call="volcenginesdkcore.universal.UniversalApi.do_call"))
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata", "signing", "volcengine")
    for case in cases():
        d = os.path.join(out_dir, case["input"]["case_name"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "case.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(case, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(case["input"]["case_name"], case["expected"]["signature"])
    if pkg_version is not None:
        for p in ("volcengine-python-sdk", "volcenginesdk-core", "volcenginesdk-mcdn", "volcengine"):
            try:
                print("#", p, pkg_version(p), file=sys.stderr)
            except Exception:  # noqa: BLE001
                print("#", p, "not installed", file=sys.stderr)


if __name__ == "__main__":
    main()
