#!/usr/bin/env python3
"""Generate CDNetworks/Wangsu AK/SK (CNC-HMAC-SHA256) test vectors with the
official wangsu-sdk-python package.

The SDK's own AkSkAuth.invoke() is run with a fixed timestamp (time.time patched
in the AkSkAuth module) and HttpUtils.call replaced by a capture stub, so nothing
is sent.  The intermediate strings (body hash input, canonical request, string to
sign) are recorded by wrapping the hashlib/hmac objects the AkSkAuth module uses,
i.e. they are the SDK's own values, not a re-implementation.  An independent
re-implementation below only double-checks them.

Usage (see testdata/signing/cdnetworks-aksk/README.md):
    /tmp/wangsu-venv/bin/python tools/vectors/cdnetworks_aksk.py [OUTPUT_DIR]
"""
import hashlib
import hmac
import json
import os
import sys

import wangsu.common.auth.AkSkAuth as aksk_module
from wangsu.common.auth.AkSkAuth import AkSkAuth
from wangsu.common.auth.AkSkConfig import AkSkConfig
from wangsu.fileprefetch.models import QueryPrefetchStatusRequest

# Synthetic credentials (not vendor-issued).
AK = "test-access-key-0123"
SK = "test-secret-key-abcdef0123456789"


class _Recorder:
    def __init__(self):
        self.sha256_inputs = []
        self.hmac_calls = []


REC = _Recorder()


class _HashlibProxy:
    """Stands in for the `hashlib` module inside AkSkAuth; records sha256 inputs."""

    def __getattr__(self, name):
        return getattr(hashlib, name)

    @staticmethod
    def sha256(data=b""):
        REC.sha256_inputs.append(bytes(data))
        return hashlib.sha256(data)


class _HmacProxy:
    """Stands in for the `hmac` module inside AkSkAuth; records (key, msg)."""

    def __getattr__(self, name):
        return getattr(hmac, name)

    @staticmethod
    def new(key, msg=None, digestmod=None):
        REC.hmac_calls.append((bytes(key), bytes(msg)))
        return hmac.new(key, msg, hashlib.sha256)


class _FixedTime:
    def __init__(self, t):
        self.t = t

    def time(self):
        return self.t


CAPTURED = []


def _capture_call(request_msg):
    CAPTURED.append(request_msg)
    return '{"Code":1,"message":"success"}'


aksk_module.hashlib = _HashlibProxy()
aksk_module.hmac = _HmacProxy()
aksk_module.HttpUtils.call = staticmethod(_capture_call)


def reimplement(method, uri, host, body, signed_headers, headers, timestamp, sk):
    names = sorted({h.lower() for h in signed_headers.split(";")}) if signed_headers \
        else ["content-type", "host"]
    lower = {k.lower(): v for k, v in headers.items()}
    canon_headers = "".join("%s:%s\n" % (n, lower.get(n, "").lower()) for n in names)
    payload = body if method in ("POST", "PUT") and body else ""
    cr = "%s\n%s\n%s\n%s\n%s\n%s" % (method, uri.split("?")[0], "", canon_headers,
                                     ";".join(names),
                                     hashlib.sha256(payload.encode()).hexdigest())
    sts = "CNC-HMAC-SHA256\n%s\n%s" % (timestamp, hashlib.sha256(cr.encode()).hexdigest())
    return cr, sts, hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()


def run_case(name, description, uri, end_point, signed_headers, timestamp, body_map):
    REC.sha256_inputs.clear()
    REC.hmac_calls.clear()
    CAPTURED.clear()
    aksk_module.time = _FixedTime(float(timestamp))

    body = json.dumps(body_map)  # as in the SDK's examples/cdn/Client.py
    cfg = AkSkConfig()
    cfg.access_key = AK
    cfg.secret_key = SK
    cfg.uri = uri
    cfg.method = "POST"
    cfg.end_point = end_point
    cfg.signed_headers = signed_headers
    AkSkAuth.invoke(cfg, body)
    (msg,) = CAPTURED

    # AkSkAuth.get_signature: sha256(body), sha256(canonical_request), hmac(sk, string_to_sign)
    assert len(REC.sha256_inputs) == 2, REC.sha256_inputs
    body_in = REC.sha256_inputs[0].decode("utf-8")
    canonical_request = REC.sha256_inputs[1].decode("utf-8")
    (hmac_key, sts_bytes), = REC.hmac_calls
    string_to_sign = sts_bytes.decode("utf-8")
    assert hmac_key == SK.encode() and body_in == body
    signature = hmac.new(hmac_key, sts_bytes, hashlib.sha256).hexdigest()
    authorization = msg.headers["Authorization"]
    assert authorization.endswith("Signature=" + signature), authorization
    cr2, sts2, sig2 = reimplement("POST", uri, msg.host, body, signed_headers,
                                  msg.headers, str(timestamp), SK)
    assert (cr2, sts2, sig2) == (canonical_request, string_to_sign, signature)

    signed_list = AkSkAuth.get_signed_headers(signed_headers)
    return {
        "input": {
            "case_name": name,
            "description": description,
            "source": "synthetic",
            "access_key": AK,
            "secret_key": SK,
            "method": "POST",
            "host": msg.host,
            "uri": uri,
            "url": msg.url,
            "signed_headers_config": signed_headers,
            "timestamp": str(timestamp),
            "body": body,
        },
        "expected": {
            "body_sha256_hex": hashlib.sha256(body.encode("utf-8")).hexdigest(),
            "signed_headers": signed_list,
            "canonical_request": canonical_request,
            "canonical_request_sha256_hex": hashlib.sha256(canonical_request.encode()).hexdigest(),
            "string_to_sign": string_to_sign,
            "signature": signature,
            "authorization": authorization,
            "request_headers_json": json.dumps(msg.headers, ensure_ascii=False),
        },
    }


def cases():
    doc_body = QueryPrefetchStatusRequest(
        start_time="2017-05-01 00:00:00", end_time="2017-05-02 23:59:59",
        item_id="3ff59d129a2c40a39b9be8c9de9975d6",
        url="https://www.test.com/test/test.jpg", status="success",
        page_no=1, page_size=20).to_map()
    yield run_case(
        "fetch-itemidquery-default-endpoint",
        "POST /ccm/fetch/ItemIdQuery, SDK default host open.chinanetcenter.com, "
        "body = the doc's request example via QueryPrefetchStatusRequest.to_map().",
        "/ccm/fetch/ItemIdQuery", None, None, 1700000000, doc_body)
    yield run_case(
        "purge-itemidquery-cdnetworks-endpoint",
        "POST /ccm/purge/ItemIdQuery on end_point api.cdnetworks.com, time-window body.",
        "/ccm/purge/ItemIdQuery", "api.cdnetworks.com", None, 1735660799,
        {"startTime": "2025-01-01 00:00:00", "endTime": "2025-01-01 23:59:59",
         "pageNo": "1", "pageSize": "1000"})
    yield run_case(
        "fetch-custom-signed-headers-mixed-case",
        "signed_headers given as 'Host;Content-Type;X-CNC-Timestamp': the SDK "
        "lowercases, de-duplicates and sorts them; header values are lowercased.",
        "/ccm/fetch/ItemIdQuery", "API.CDNetworks.com", "Host;Content-Type;X-CNC-Timestamp",
        1709222430, {"itemId": "3ff59d129a2c40a39b9be8c9de9975d6"})
    yield run_case(
        "fetch-non-ascii-url-body",
        "Body with non-ASCII URL: json.dumps escapes it to \\uXXXX, so the signed body is ASCII.",
        "/ccm/fetch/ItemIdQuery", None, None, 1707102245,
        {"url": "https://www.test.com/图片/ü.jpg", "startTime": "2024-02-05 11:00:00",
         "endTime": "2024-02-05 12:00:00"})
    yield run_case(
        "purge-empty-object-body",
        "Body '{}' (empty JSON object).",
        "/ccm/purge/ItemIdQuery", None, None, 1735689600, {})


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        root, "testdata", "signing", "cdnetworks-aksk")
    for case in cases():
        d = os.path.join(out, case["input"]["case_name"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "case.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(case, ensure_ascii=False, indent=2) + "\n")
        print(case["input"]["case_name"], case["expected"]["signature"])


if __name__ == "__main__":
    main()
