#!/usr/bin/env python3
"""Generate Alibaba Cloud signing test vectors with the official Python SDKs.

RPC v1 (HMAC-SHA1), aliyun-python-sdk-core:
  * "signer" cases push an aliyunsdkcore.request.RpcRequest through the SDK's
    own signer (AccessKeySigner / StsTokenSigner .sign -> RpcRequest.get_url ->
    rpc_signature_composer.get_signed_url), i.e. what AcsClient does before it
    opens a connection.  Timestamp and nonce come from
    aliyunsdkcore.utils.parameter_helper, which is pinned.
  * "compose" cases (the vendor-published examples) call the composer's own
    private helpers (__compose_string_to_sign, __get_signature) on exactly the
    documented parameter set, because get_signed_url always adds
    SignatureType= and RegionId, which the doc example does not have.
  * Intermediates are captured by wrapping the composer's module globals:
    the sign-parameter dict handed to __compose_string_to_sign, the argument
    of pathname2url (= the canonicalized query string) and the return value of
    __get_signature.

ACS3-HMAC-SHA256, alibabacloud-tea-openapi:
  * "client" cases run alibabacloud_tea_openapi.client.Client.call_api (default
    config -> do_request, the ACS3 path) with
    DaraCore.do_action replaced by a recorder (nothing is sent); timestamp,
    nonce and user-agent are pinned.
  * the published V3 example calls Utils.get_authorization directly on the
    documented request.
  * Intermediates come from wrapping the module helpers get_authorization
    uses (get_canonical_query_string, get_canonicalized_headers, Utils.hash,
    signature_method).  Every case is cross-checked against the older
    alibabacloud_openapi_util.client.Client.get_authorization.

Usage (see testdata/signing/aliyun/README.md):
    /tmp/vectors-venv/bin/python tools/vectors/aliyun.py [OUTPUT_ROOT]
OUTPUT_ROOT defaults to testdata/signing relative to the repo root; the script
writes OUTPUT_ROOT/aliyun/<case>/case.json and OUTPUT_ROOT/aliyun-acs3/<case>/case.json.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
from urllib.parse import quote

import aliyunsdkcore
import aliyunsdkcore.auth.composer.rpc_signature_composer as rpc
import aliyunsdkcore.utils.parameter_helper as helper
from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential
from aliyunsdkcore.auth.signers.access_key_signer import AccessKeySigner
from aliyunsdkcore.auth.signers.sts_token_signer import StsTokenSigner
from aliyunsdkcore.request import RpcRequest

import alibabacloud_tea_openapi.utils as tea_utils_mod
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi import utils_models as oa_models
import alibabacloud_tea_openapi.client as tea_client_mod
from alibabacloud_openapi_util.client import Client as OldOpenApiUtil
from darabonba.request import DaraRequest
from darabonba.runtime import RuntimeOptions

try:
    from importlib.metadata import version as pkg_version
except ImportError:  # pragma: no cover
    pkg_version = None

# Synthetic (not vendor-issued) credentials for the CDN cases.
AK = "LTAI5tExampleAccessKeyId"
SECRET = "exampleAccessKeySecret"
STS_AK = "STS.NTExampleStsAccessKeyId"
STS_SECRET = "exampleStsAccessKeySecret"
STS_TOKEN = "CAIS+exampleSecurityToken/with+plus=and/slash=="
CDN_HOST = "cdn.aliyuncs.com"
CDN_VERSION = "2018-05-10"
REGION_ID = "cn-hangzhou"

# ------------------------------------------------------------ RPC v1 capture
_compose = getattr(rpc, "__compose_string_to_sign")
_get_sig = getattr(rpc, "__get_signature")
_pop = getattr(rpc, "__pop_standard_urlencode")
_p2u = rpc.pathname2url
CAP = {}


def _w_compose(method, queries):
    CAP["sign_params"] = dict(queries)
    CAP["method"] = method
    return _compose(method, queries)


def _w_p2u(s):
    CAP["canonicalized_query_string"] = s
    return _p2u(s)


def _w_get_sig(string_to_sign, secret, signer=None):
    out = _get_sig(string_to_sign, secret) if signer is None else _get_sig(string_to_sign, secret, signer)
    CAP["string_to_sign"] = string_to_sign
    CAP["hmac_key"] = secret + "&"
    CAP["signature"] = out
    return out


setattr(rpc, "__compose_string_to_sign", _w_compose)
setattr(rpc, "__get_signature", _w_get_sig)
rpc.pathname2url = _w_p2u


class _Pin(object):
    timestamp = None
    nonce = None


helper.get_iso_8061_date = lambda: _Pin.timestamp
helper.get_uuid = lambda: _Pin.nonce


def _recheck_v1(method, sign_params, canon, sts, key, sig):
    # Independent re-check with the standard library (recorded values are the SDK's).
    enc = lambda s: quote(s, safe="-_.~", encoding="utf-8")  # noqa: E731
    mine = "&".join(enc(k) + "=" + enc(v) for k, v in sorted(sign_params.items()))
    assert mine == canon, (mine, canon)
    assert sts == method + "&%2F&" + enc(canon), sts
    assert base64.b64encode(hmac.new(key.encode(), sts.encode(), hashlib.sha1).digest()).decode() == sig


def v1_case_dict(name, description, source, sdk_call, method, host, region_id, ak, secret, token,
                 timestamp, nonce, fmt, version, action, params, signed_url_query, published):
    sp = CAP["sign_params"]
    _recheck_v1(method, sp, CAP["canonicalized_query_string"], CAP["string_to_sign"],
                CAP["hmac_key"], CAP["signature"])
    if published is not None:
        assert CAP["signature"] == published, (name, CAP["signature"], published)
    return {
        "input": {
            "case_name": name,
            "description": description,
            "source": source,
            "sdk_call": sdk_call,
            "method": method,
            "scheme": "https",
            "host": host,
            "path": "/",
            "region_id": region_id,
            "access_key_id": ak,
            "access_key_secret": secret,
            "security_token": token,
            "timestamp": timestamp,
            "signature_nonce": nonce,
            "format": fmt,
            "version": version,
            "action": action,
            "params": [[k, v] for k, v in params],
            "published_signature": published,
        },
        "expected": {
            "signed_params": [[k, v] for k, v in sorted(sp.items())],
            "canonicalized_query_string": CAP["canonicalized_query_string"],
            "string_to_sign": CAP["string_to_sign"],
            "hmac_key": CAP["hmac_key"],
            "signature": CAP["signature"],
            "signed_url_query": signed_url_query,
            "url": "https://" + host + "/?" + signed_url_query,
        },
    }


def v1_signer_case(name, description, action, params, timestamp, nonce, method="GET",
                   ak=AK, secret=SECRET, token=None, fmt="JSON", version=CDN_VERSION,
                   host=CDN_HOST, region_id=REGION_ID):
    """What AcsClient does: signer.sign(region_id, request) -> (headers, url)."""
    CAP.clear()
    _Pin.timestamp, _Pin.nonce = timestamp, nonce
    req = RpcRequest("Cdn", version, action)
    req.set_accept_format(fmt)
    req.set_method(method)
    for k, v in params:
        req.add_query_param(k, v)
    if token is None:
        signer = AccessKeySigner(AccessKeyCredential(ak, secret))
        sdk_call = "aliyunsdkcore.auth.signers.access_key_signer.AccessKeySigner.sign"
    else:
        signer = StsTokenSigner(StsTokenCredential(ak, secret, token))
        sdk_call = "aliyunsdkcore.auth.signers.sts_token_signer.StsTokenSigner.sign"
    _headers, url = signer.sign(region_id, req)
    assert url.startswith("/?")
    assert req.string_to_sign == CAP["string_to_sign"]
    assert CAP["method"] == method
    return v1_case_dict(name, description, "synthetic", sdk_call, method, host, region_id, ak,
                        secret, token, timestamp, nonce, fmt, version, action, params, url[2:], None)


def v1_compose_case(name, description, source, method, host, ak, secret, all_params, published,
                    timestamp_key="Timestamp"):
    """Vendor-published example: exactly the documented parameters, nothing added."""
    CAP.clear()
    sp = dict(all_params)
    # Module globals, i.e. the capturing wrappers around the SDK helpers.
    sts = getattr(rpc, "__compose_string_to_sign")(method, sp)
    sig = getattr(rpc, "__get_signature")(sts, secret)
    url_params = dict(all_params)
    url_params["Signature"] = sig
    from aliyunsdkcore.vendored.six.moves.urllib.parse import urlencode
    signed_url_query = _pop(urlencode(url_params))
    business = [[k, v] for k, v in all_params if k not in (
        "AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce", "SignatureVersion",
        timestamp_key, "Version")]
    d = dict(all_params)
    return v1_case_dict(name, description, source,
                        "aliyunsdkcore.auth.composer.rpc_signature_composer.__compose_string_to_sign"
                        " + __get_signature", method, host, d.get("RegionId"), ak, secret, None,
                        d[timestamp_key], d["SignatureNonce"], d["Format"], d["Version"], d["Action"],
                        business, signed_url_query, published)


def v1_cases():
    out = []
    out.append(v1_compose_case(
        "published-ecs-describe-regions",
        "RPC signature doc example (ECS DescribeRegions, GET, Format XML). No SignatureType, no RegionId.",
        "vendor-published: Alibaba Cloud RPC signature doc (ECS DescribeRegions)",
        "GET", "ecs.aliyuncs.com", "testid", "testsecret",
        [("Timestamp", "2016-02-23T12:46:24Z"), ("Format", "XML"), ("AccessKeyId", "testid"),
         ("Action", "DescribeRegions"), ("SignatureMethod", "HMAC-SHA1"),
         ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"), ("Version", "2014-05-26"),
         ("SignatureVersion", "1.0")],
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY="))
    out.append(v1_compose_case(
        "published-ecs-describe-regions-timestamp-spelling",
        "Older copy of the same doc example that spells the key 'TimeStamp' (sorts after "
        "SignatureVersion).",
        "vendor-published: older copy of the RPC signature doc",
        "GET", "ecs.aliyuncs.com", "testid", "testsecret",
        [("TimeStamp", "2016-02-23T12:46:24Z"), ("Format", "XML"), ("AccessKeyId", "testid"),
         ("Action", "DescribeRegions"), ("SignatureMethod", "HMAC-SHA1"),
         ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"), ("Version", "2014-05-26"),
         ("SignatureVersion", "1.0")],
        "CT9X0VtwR86fNWSnsc6v8YGOjuE=", timestamp_key="TimeStamp"))
    out.append(v1_compose_case(
        "published-ecs-describe-dedicated-hosts",
        "V2 signature doc fixed-parameter example (ECS DescribeDedicatedHosts, GET, Format JSON).",
        "vendor-published (expected value via public code citing the doc; see vendors.md 2.2)",
        "GET", "ecs.cn-beijing.aliyuncs.com", "testid", "testsecret",
        [("AccessKeyId", "testid"), ("Action", "DescribeDedicatedHosts"), ("Format", "JSON"),
         ("RegionId", "cn-beijing"), ("SignatureMethod", "HMAC-SHA1"),
         ("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"), ("SignatureVersion", "1.0"),
         ("Timestamp", "2023-03-13T08:34:30Z"), ("Version", "2014-05-26")],
        "9NaGiOspFP5UPcwX8Iwt2YJXXuk="))

    ts, ts2 = "2024-02-19T03:23:34Z", "2024-02-19T03:23:35Z"
    window = [("StartTime", "2024-02-18T03:00:00Z"), ("EndTime", "2024-02-19T03:00:00Z")]
    out.append(v1_signer_case(
        "describe-refresh-tasks",
        "DescribeRefreshTasks, GET, file refreshes of one domain in a time window, page 1 of 100.",
        "DescribeRefreshTasks",
        [("ObjectType", "file"), ("DomainName", "www.example.com"), ("PageNumber", "1"),
         ("PageSize", "100")] + window,
        ts, "0f5c1d2e3a4b5c6d7e8f90a1b2c3d4e5"))
    out.append(v1_signer_case(
        "describe-refresh-tasks-preload-post",
        "DescribeRefreshTasks with method POST (the classic SDK still puts everything in the URL; "
        "only the method in the string to sign changes).",
        "DescribeRefreshTasks",
        [("ObjectType", "preload"), ("PageNumber", "2"), ("PageSize", "100")] + window,
        ts2, "1a2b3c4d5e6f708192a3b4c5d6e7f809", method="POST"))
    out.append(v1_signer_case(
        "describe-refresh-task-by-id",
        "DescribeRefreshTaskById with several comma-separated ids (',' -> %2C, then %252C).",
        "DescribeRefreshTaskById",
        [("TaskId", "17004858241,17004858242,17004858243,17004858244")],
        ts, "2b3c4d5e6f708192a3b4c5d6e7f8091a"))
    out.append(v1_signer_case(
        "describe-refresh-quota",
        "DescribeRefreshQuota, no business parameters (only common ones + RegionId).",
        "DescribeRefreshQuota", [], ts, "3c4d5e6f708192a3b4c5d6e7f8091a2b"))
    out.append(v1_signer_case(
        "describe-refresh-tasks-sts",
        "STS credentials: StsTokenSigner adds SecurityToken as a query parameter; token contains "
        "'+', '/' and '='.",
        "DescribeRefreshTasks",
        [("ObjectType", "directory"), ("PageNumber", "1"), ("PageSize", "100")] + window,
        ts, "4d5e6f708192a3b4c5d6e7f8091a2b3c", ak=STS_AK, secret=STS_SECRET, token=STS_TOKEN))
    out.append(v1_signer_case(
        "describe-refresh-tasks-special-chars",
        "ObjectPath with space, '*', '~', '/', '?', '&', '=' and non-ASCII (UTF-8) characters.",
        "DescribeRefreshTasks",
        [("ObjectPath", "https://www.example.com/目录/a b*c~d.jpg?x=1&y=é"), ("ObjectType", "file"),
         ("PageSize", "100")],
        ts, "5e6f708192a3b4c5d6e7f8091a2b3c4d"))
    return out


# -------------------------------------------------------------- ACS3 capture
ACAP = {}
_o_cq = tea_utils_mod.get_canonical_query_string
_o_ch = tea_utils_mod.get_canonicalized_headers
_o_sm = tea_utils_mod.signature_method
_o_hash = TeaUtils.hash


def _w_cq(query):
    out = _o_cq(query)
    ACAP["canonical_query_string"] = out
    return out


def _w_ch(headers):
    out = _o_ch(headers)
    ACAP["canonical_headers"], ACAP["signed_headers"] = out
    return out


def _w_sm(secret, source, sign_type):
    out = _o_sm(secret, source, sign_type)
    ACAP["string_to_sign"] = source
    return out


def _w_hash(raw, sign_type):
    out = _o_hash(raw, sign_type)
    ACAP.setdefault("hash_calls", []).append((raw, out))
    return out


tea_utils_mod.get_canonical_query_string = _w_cq
tea_utils_mod.get_canonicalized_headers = _w_ch
tea_utils_mod.signature_method = _w_sm
TeaUtils.hash = staticmethod(_w_hash)


class _APin(object):
    timestamp = None
    nonce = None


USER_AGENT = "AlibabaCloud (test-vectors) Python/pinned Core/pinned TeaDSL/2"
TeaUtils.get_timestamp = staticmethod(lambda: _APin.timestamp)
TeaUtils.get_nonce = staticmethod(lambda: _APin.nonce)
TeaUtils.get_user_agent = staticmethod(lambda ua: USER_AGENT)


class _Captured(Exception):
    pass


SENT = []


def _fake_do_action(request, runtime_option=None):
    SENT.append(request)
    raise _Captured()


tea_client_mod.DaraCore.do_action = staticmethod(_fake_do_action)

_orig_get_auth = TeaUtils.get_authorization


def _w_get_auth(request, sign_type, payload, ak, secret):
    ACAP["headers_in"] = [[k, v] for k, v in request.headers.items()]
    ACAP["query_in"] = [[k, v] for k, v in request.query.items()]
    ACAP["payload"] = payload
    ACAP["ak"], ACAP["secret"] = ak, secret
    ACAP["method"], ACAP["pathname"] = request.method, request.pathname
    # Cross-check with the older alibabacloud_openapi_util implementation.
    ACAP["old_util_authorization"] = OldOpenApiUtil.get_authorization(request, sign_type, payload, ak, secret)
    ACAP.pop("hash_calls", None)
    out = _orig_get_auth(request, sign_type, payload, ak, secret)
    ACAP["authorization"] = out
    return out


TeaUtils.get_authorization = staticmethod(_w_get_auth)


def acs3_case_dict(name, description, source, sdk_call, host, body, token, timestamp, nonce,
                   headers_sent, url, published):
    canonical_request = ACAP["hash_calls"][0][0].decode("utf-8")
    hashed = ACAP["hash_calls"][0][1].hex()
    sts = ACAP["string_to_sign"]
    auth = ACAP["authorization"]
    signature = auth.rsplit("Signature=", 1)[1]
    # Independent re-checks.
    assert hashlib.sha256(canonical_request.encode()).hexdigest() == hashed
    assert sts == "ACS3-HMAC-SHA256\n" + hashed
    assert hmac.new(ACAP["secret"].encode(), sts.encode(), hashlib.sha256).hexdigest() == signature
    assert ACAP["old_util_authorization"] == auth, (name, ACAP["old_util_authorization"], auth)
    if published is not None:
        assert signature == published, (name, signature, published)
    return {
        "input": {
            "case_name": name,
            "description": description,
            "source": source,
            "sdk_call": sdk_call,
            "method": ACAP["method"],
            "scheme": "https",
            "host": host,
            "path": ACAP["pathname"],
            "query": ACAP["query_in"],
            "headers": ACAP["headers_in"],
            "body": body,
            "access_key_id": ACAP["ak"],
            "access_key_secret": ACAP["secret"],
            "security_token": token,
            "timestamp": timestamp,
            "signature_nonce": nonce,
            "published_signature": published,
        },
        "expected": {
            "x_acs_content_sha256": ACAP["payload"],
            "canonical_query_string": ACAP["canonical_query_string"],
            "canonical_headers": ACAP["canonical_headers"],
            "signed_headers": ACAP["signed_headers"],
            "canonical_request": canonical_request,
            "hashed_canonical_request": hashed,
            "string_to_sign": sts,
            "signature": signature,
            "authorization": auth,
            "headers_sent": headers_sent,
            "url": url,
        },
    }


def acs3_published_case():
    ACAP.clear()
    req = DaraRequest()
    req.method = "POST"
    req.pathname = "/"
    req.query = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                 "RegionId": "cn-shanghai"}
    empty = hashlib.sha256(b"").hexdigest()
    req.headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-version": "2014-05-26",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-content-sha256": empty,
    }
    auth = TeaUtils.get_authorization(req, "ACS3-HMAC-SHA256", empty, "YourAccessKeyId",
                                      "YourAccessKeySecret")
    headers_sent = [[k, v] for k, v in req.headers.items()] + [["Authorization", auth]]
    url = "https://ecs.cn-shanghai.aliyuncs.com/?" + ACAP["canonical_query_string"]
    return acs3_case_dict(
        "published-ecs-run-instances",
        "V3 signature doc fixed-parameter example (POST RunInstances, empty body).",
        "vendor-published: Alibaba Cloud V3 (ACS3) signature doc",
        "alibabacloud_tea_openapi.utils.Utils.get_authorization",
        "ecs.cn-shanghai.aliyuncs.com", "", None, "2023-10-26T10:22:32Z",
        "3156853299f313e23d1673dc12e1703d", headers_sent, url,
        "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0")


def acs3_client_case(name, description, action, query, timestamp, nonce, method="POST",
                     ak=AK, secret=SECRET, token=None):
    """alibabacloud_tea_openapi Client.do_request as alibabacloud-cdn20180510 calls it
    (style RPC, pathname '/', business params in the query, no body)."""
    ACAP.clear()
    del SENT[:]
    _APin.timestamp, _APin.nonce = timestamp, nonce
    cfg = oa_models.Config(access_key_id=ak, access_key_secret=secret, security_token=token,
                           endpoint=CDN_HOST)
    client = OpenApiClient(cfg)
    params = oa_models.Params(action=action, version=CDN_VERSION, protocol="HTTPS", pathname="/",
                              method=method, auth_type="AK", style="RPC", req_body_type="formData",
                              body_type="json")
    req = oa_models.OpenApiRequest(query=dict(query))
    runtime = RuntimeOptions(autoretry=False, max_attempts=1)
    try:
        client.call_api(params, req, runtime)
    except _Captured:
        pass
    except Exception:  # noqa: BLE001  (a retry wrapper may re-wrap the capture)
        if not SENT:
            raise
    assert len(SENT) >= 1
    sent = SENT[0]
    headers_sent = [[k, v] for k, v in sent.headers.items()]
    from darabonba.core import DaraCore
    url = DaraCore.compose_url(sent)
    return acs3_case_dict(name, description, "synthetic",
                          "alibabacloud_tea_openapi.client.Client.call_api (-> do_request)", CDN_HOST,
                          sent.body if sent.body is not None else "", token, timestamp, nonce,
                          headers_sent, url, None)


def acs3_cases():
    ts = "2024-02-19T03:23:34Z"
    window = [("StartTime", "2024-02-18T03:00:00Z"), ("EndTime", "2024-02-19T03:00:00Z")]
    out = [acs3_published_case()]
    out.append(acs3_client_case(
        "describe-refresh-tasks",
        "DescribeRefreshTasks via the new SDK path (RPC style, params in query, empty body).",
        "DescribeRefreshTasks",
        [("ObjectType", "file"), ("DomainName", "www.example.com"), ("PageNumber", "1"),
         ("PageSize", "100")] + window,
        ts, "6f708192a3b4c5d6e7f8091a2b3c4d5e"))
    out.append(acs3_client_case(
        "describe-refresh-task-by-id-sts",
        "DescribeRefreshTaskById with comma-separated ids and STS credentials "
        "(x-acs-accesskey-id + x-acs-security-token are added and signed).",
        "DescribeRefreshTaskById", [("TaskId", "17004858241,17004858242,17004858243")],
        ts, "708192a3b4c5d6e7f8091a2b3c4d5e6f", ak=STS_AK, secret=STS_SECRET, token=STS_TOKEN))
    out.append(acs3_client_case(
        "describe-refresh-tasks-special-chars",
        "ObjectPath with space, '*', '~', '/', '?', '&', '=' and non-ASCII; note the SDK "
        "percent-encodes values only (names are not encoded).",
        "DescribeRefreshTasks",
        [("ObjectPath", "https://www.example.com/目录/a b*c~d.jpg?x=1&y=é"), ("ObjectType", "file"),
         ("PageSize", "100")],
        ts, "8192a3b4c5d6e7f8091a2b3c4d5e6f70"))
    out.append(acs3_client_case(
        "describe-refresh-quota",
        "DescribeRefreshQuota, no query parameters (empty canonical query string).",
        "DescribeRefreshQuota", [], ts, "92a3b4c5d6e7f8091a2b3c4d5e6f7081"))
    return out


def _write(base, sub, case):
    d = os.path.join(base, sub, case["input"]["case_name"])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "case.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(case, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(sub, case["input"]["case_name"], case["expected"]["signature"])


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata", "signing")
    for case in v1_cases():
        _write(base, "aliyun", case)
    for case in acs3_cases():
        _write(base, "aliyun-acs3", case)
    if pkg_version is not None:
        for p in ("aliyun-python-sdk-core", "alibabacloud-tea-openapi", "alibabacloud-openapi-util",
                  "darabonba-core"):
            print("#", p, pkg_version(p), file=sys.stderr)


if __name__ == "__main__":
    main()
