#!/usr/bin/env python3
"""Generate Tencent Cloud TC3-HMAC-SHA256 signing vectors with the official SDK.

Every value under "expected" comes out of tencentcloud-sdk-python code:

* "client" cases run the real CDN client (tencentcloud.cdn.v20180606.CdnClient,
  DescribePurgeTasks / DescribePushTasks / DescribePurgeQuota /
  DescribePushQuota) through AbstractClient.call -> _build_req_with_tc3_signature
  -> _get_tc3_signature -> Sign.sign_tc3.  The request the SDK would put on the
  wire (headers, body) is captured at ApiRequest.send_request, which is
  replaced by a fake that answers an empty success; nothing is sent anywhere.
* The intermediate stages are the SDK's own values: the payload and the
  canonical request are the inputs the SDK hands to hashlib.sha256 inside
  abstract_client (recorded by wrapping that module's hashlib), the string to
  sign and the derived keys are what Sign.sign_tc3 receives and computes
  (recorded by wrapping hmac.new in tencentcloud.common.sign).
* The "document" case is the worked example of the Signature v3 page
  (https://www.tencentcloud.com/document/api/213/30654): the values in
  "expected" are the ones that page prints; the script checks that the SDK's
  Sign.sign_tc3 gives the same signature from the page's string to sign.

The clock (time.time in abstract_client) and the trace id (uuid4) are pinned.

Usage (see testdata/signing/tencent/README.md):
    /tmp/tc-venv/bin/python tools/vectors/tencent.py [OUTPUT_DIR]
"""
import hashlib
import hmac
import json
import os
import sys
import types
import uuid

import tencentcloud
import tencentcloud.common.abstract_client as ac
import tencentcloud.common.sign as sign_mod
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cdn.v20180606 import cdn_client, models

try:
    from importlib.metadata import version as pkg_version
except ImportError:  # pragma: no cover
    pkg_version = None

SECRET_ID = "AKIDexampleSecretId0123456789abcdef"
SECRET_KEY = "exampleSecretKey0123456789abcdef"
STS_ID = "AKIDstsExampleTemporarySecretId01234"
STS_KEY = "exampleStsTemporarySecretKey0123456"
STS_TOKEN = "sts-token-example-0123456789_abcdefABCDEF=="
HOST = "cdn.tencentcloudapi.com"
TRACE_ID = "00000000-0000-4000-8000-000000000001"


class _Clock(object):
    now = 0


ac.time = types.SimpleNamespace(time=lambda: _Clock.now)
ac.uuid = types.SimpleNamespace(uuid4=lambda: uuid.UUID(TRACE_ID))

SHA_INPUTS = []
HMACS = []


class _Sha(object):
    """hashlib as abstract_client sees it: records every sha256 input."""

    @staticmethod
    def sha256(data=b""):
        SHA_INPUTS.append(bytes(data))
        return hashlib.sha256(data)


ac.hashlib = _Sha


class _Hmac(object):
    @staticmethod
    def new(key, msg, digestmod):
        h = hmac.new(key, msg, digestmod)
        HMACS.append((key, msg, h.digest()))
        return h


sign_mod.hmac = _Hmac


class _FakeResponse(object):
    status_code = 200
    headers = {"Content-Type": "application/json"}

    def __init__(self, action):
        body = {"Response": {"RequestId": "fake-request-id"}}
        if action == "DescribePurgeTasks":
            body["Response"].update({"PurgeLogs": [], "TotalCount": 0})
        elif action == "DescribePushTasks":
            body["Response"].update({"PushLogs": [], "TotalCount": 0})
        elif action == "DescribePurgeQuota":
            body["Response"].update({"UrlPurge": [], "PathPurge": []})
        else:
            body["Response"].update({"UrlPush": []})
        self.content = json.dumps(body).encode("utf-8")
        self.text = self.content.decode("utf-8")


SENT = []


def _client(endpoint, secret_id, secret_key, token, region, unsigned):
    cred = credential.Credential(secret_id, secret_key, token)
    http = HttpProfile(endpoint=endpoint, reqMethod="POST")
    profile = ClientProfile(httpProfile=http, disable_region_breaker=True)
    profile.unsignedPayload = unsigned
    client = cdn_client.CdnClient(cred, region, profile)

    def send(req_inter):
        SENT.append({"host": req_inter.host, "method": req_inter.method, "uri": req_inter.uri,
                     "headers": list(req_inter.header.items()), "data": req_inter.data})
        return _FakeResponse(req_inter.header["X-TC-Action"])

    client.request.send_request = send
    return client


def client_case(name, description, action, fields, timestamp, endpoint=HOST, secret_id=SECRET_ID,
                secret_key=SECRET_KEY, token=None, region="", unsigned=False):
    _Clock.now = timestamp
    del SHA_INPUTS[:], HMACS[:], SENT[:]
    client = _client(endpoint, secret_id, secret_key, token, region, unsigned)
    req = getattr(models, action + "Request")()
    req.from_json_string(json.dumps(fields))
    getattr(client, action)(req)
    assert len(SENT) == 1, name
    sent = SENT[0]
    headers = dict(sent["headers"])
    # abstract_client hashes the payload, then the canonical request.
    assert len(SHA_INPUTS) == 2, (name, SHA_INPUTS)
    payload, canonical_request = SHA_INPUTS[0], SHA_INPUTS[1].decode("utf-8")
    hashed_payload = hashlib.sha256(payload).hexdigest()
    # sign_tc3: kDate, kService, kSigning, then the signature.
    assert len(HMACS) == 4, name
    (k0, date, k_date), (_, service, k_service), (_, term, k_signing), (_, sts, sig) = HMACS
    assert k0 == ("TC3" + secret_key).encode("utf-8") and term == b"tc3_request", name
    string_to_sign = sts.decode("utf-8")
    signature = sig.hex()
    lines = canonical_request.split("\n")
    canonical_headers = "\n".join(lines[3:-3]) + "\n"
    assert lines[-3] == "" and lines[-1] == hashed_payload, name
    signed_headers = lines[-2]
    sts_lines = string_to_sign.split("\n")
    credential_scope = sts_lines[2]
    assert sts_lines[3] == hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(), name
    assert credential_scope == "%s/%s/tc3_request" % (date.decode(), service.decode()), name
    authorization = headers["Authorization"]
    assert authorization.endswith("Signature=" + signature), name
    return {
        "input": {
            "case_name": name,
            "description": description,
            "source": "sdk",
            "sdk_call": "tencentcloud.cdn.v20180606.cdn_client.CdnClient.%s" % action,
            "method": sent["method"],
            "host": headers["Host"],
            "path": sent["uri"],
            "content_type": headers["Content-Type"],
            "action": action,
            "version": headers["X-TC-Version"],
            "region": headers.get("X-TC-Region"),
            "body": sent["data"],
            "secret_id": secret_id,
            "secret_key": secret_key,
            "token": token,
            "unsigned_payload": unsigned,
            "timestamp": timestamp,
        },
        "expected": {
            "date": date.decode("utf-8"),
            "hashed_payload": hashed_payload,
            "canonical_headers": canonical_headers,
            "signed_headers": signed_headers,
            "canonical_request": canonical_request,
            "hashed_canonical_request": sts_lines[3],
            "credential_scope": credential_scope,
            "string_to_sign": string_to_sign,
            "secret_date": k_date.hex(),
            "secret_service": k_service.hex(),
            "secret_signing": k_signing.hex(),
            "signature": signature,
            "authorization": authorization,
            "headers_sent": [[k, v] for k, v in sent["headers"]],
            "body_sent": sent["data"],
        },
    }


def document_case():
    """The worked example of https://www.tencentcloud.com/document/api/213/30654."""
    secret_key = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
    secret_id = "AKID**********************0123456789EXAMPLE"
    body = '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    expected = {
        "date": "2019-02-25",
        "hashed_payload": "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064",
        "canonical_headers": "content-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n",
        "signed_headers": "content-type;host",
        "canonical_request": "POST\n/\n\ncontent-type:application/json; charset=utf-8\n"
                             "host:cvm.tencentcloudapi.com\n\ncontent-type;host\n"
                             "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064",
        "hashed_canonical_request": "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
        "credential_scope": "2019-02-25/cvm/tc3_request",
        "string_to_sign": "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
                          "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
        "signature": "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
        "authorization": "TC3-HMAC-SHA256 Credential=AKID**********************0123456789EXAMPLE/"
                         "2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, "
                         "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
    }
    # The SDK's own key chain and final HMAC agree with the page.
    del HMACS[:]
    assert sign_mod.Sign.sign_tc3(secret_key, "2019-02-25", "cvm",
                                  expected["string_to_sign"]) == expected["signature"]
    expected["secret_date"] = HMACS[0][2].hex()
    expected["secret_service"] = HMACS[1][2].hex()
    expected["secret_signing"] = HMACS[2][2].hex()
    assert hashlib.sha256(body.encode()).hexdigest() == expected["hashed_payload"]
    return {
        "input": {
            "case_name": "document-cvm-describe-instances",
            "description": "Worked example of the Signature v3 page (CVM DescribeInstances, "
                           "Content-Type with charset). Values are the page's; the derived keys "
                           "come from the SDK's Sign.sign_tc3, whose signature equals the page's.",
            "source": "https://www.tencentcloud.com/document/api/213/30654",
            "sdk_call": "tencentcloud.common.sign.Sign.sign_tc3 (cross-check)",
            "method": "POST",
            "host": "cvm.tencentcloudapi.com",
            "path": "/",
            "content_type": "application/json; charset=utf-8",
            "action": "DescribeInstances",
            "version": "2017-03-12",
            "region": "ap-guangzhou",
            "body": body,
            "secret_id": secret_id,
            "secret_key": secret_key,
            "token": None,
            "unsigned_payload": False,
            "timestamp": 1551113065,
        },
        "expected": expected,
    }


T0 = 1708313014            # 2024-02-19 03:23:34 UTC = 11:23:34 Beijing
T_MIDNIGHT = 1708360200    # 2024-02-19 16:30:00 UTC = 2024-02-20 00:30 Beijing: scope date stays UTC


def cases():
    window = {"StartTime": "2024-02-18 11:23:34", "EndTime": "2024-02-19 11:23:33"}
    out = [document_case()]
    out.append(client_case(
        "describe-purge-tasks-url",
        "URL purge records in a Beijing-time window, first page of 1000, domain filter.",
        "DescribePurgeTasks",
        dict(window, PurgeType="url", Offset=0, Limit=1000, Keyword="www.example.com"), T0))
    out.append(client_case(
        "describe-purge-tasks-path-page-3",
        "Directory purge records, third page (Offset 2000), area filter.",
        "DescribePurgeTasks",
        dict(window, PurgeType="path", Offset=2000, Limit=1000, Area="overseas"), T0))
    out.append(client_case(
        "describe-purge-tasks-by-task-id",
        "Re-check by TaskId alone (no window): the API needs a TaskId or a start time.",
        "DescribePurgeTasks", {"TaskId": "1708313014123456789", "Offset": 0, "Limit": 1000}, T0))
    out.append(client_case(
        "describe-push-tasks",
        "Prefetch records in a window, mainland only.",
        "DescribePushTasks", dict(window, Offset=0, Limit=1000, Area="mainland"), T0))
    out.append(client_case(
        "describe-push-tasks-sts",
        "Temporary credentials: X-TC-Token is sent and is not signed.",
        "DescribePushTasks", dict(window, Offset=1000, Limit=1000), T0,
        secret_id=STS_ID, secret_key=STS_KEY, token=STS_TOKEN))
    out.append(client_case(
        "describe-purge-quota",
        "DescribePurgeQuota, empty JSON object body.",
        "DescribePurgeQuota", {}, T0))
    out.append(client_case(
        "describe-push-quota-region",
        "DescribePushQuota with a region: X-TC-Region is sent and is not signed.",
        "DescribePushQuota", {}, T0, region="ap-guangzhou"))
    out.append(client_case(
        "describe-purge-tasks-local-port",
        "Endpoint 127.0.0.1:18080 (a test server): the Host is signed with its port.",
        "DescribePurgeTasks", dict(window, PurgeType="url", Offset=0, Limit=1000), T0,
        endpoint="127.0.0.1:18080"))
    out.append(client_case(
        "describe-purge-tasks-utc-date",
        "16:30 UTC is already the next day in Beijing: the scope date is the UTC date.",
        "DescribePurgeTasks", {"StartTime": "2024-02-19 00:00:00", "EndTime": "2024-02-20 00:30:00",
                               "Offset": 0, "Limit": 1000}, T_MIDNIGHT))
    out.append(client_case(
        "describe-push-tasks-non-ascii-keyword",
        "A keyword URL with non-ASCII and spaces: json.dumps escapes it as \\uXXXX, the hash is "
        "over those ASCII bytes.",
        "DescribePushTasks", dict(window, Keyword="https://www.example.com/路径/a b.jpg?x=é",
                                  Offset=0, Limit=1000), T0))
    out.append(client_case(
        "describe-purge-tasks-unsigned-payload",
        "ClientProfile.unsignedPayload: X-TC-Content-SHA256: UNSIGNED-PAYLOAD, the hash is of "
        "that literal string.",
        "DescribePurgeTasks", dict(window, Offset=0, Limit=1000), T0, unsigned=True))
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata", "signing", "tencent")
    for case in cases():
        d = os.path.join(out_dir, case["input"]["case_name"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "case.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(case, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(case["input"]["case_name"], case["expected"]["signature"])
    if pkg_version is not None:
        for p in ("tencentcloud-sdk-python-common", "tencentcloud-sdk-python-cdn"):
            print("#", p, pkg_version(p), file=sys.stderr)
    print("# tencentcloud", tencentcloud.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
