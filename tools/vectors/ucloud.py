#!/usr/bin/env python3
"""Generate UCloud API signature test vectors with the official ucloud-sdk-python3.

Every case is pushed through the SDK's real client code path
(Client.invoke -> _build_http_request -> encoder.encode -> Credential.verify_ac)
with a capturing transport instead of the network, so the recorded params and
signature are exactly what the SDK would POST.  Nothing is sent anywhere.

Usage (see testdata/signing/ucloud/README.md):
    /tmp/ucloud-venv/bin/python tools/vectors/ucloud.py [OUTPUT_DIR]
OUTPUT_DIR defaults to testdata/signing/ucloud relative to the repo root.
"""
import hashlib
import json
import os
import sys

# This file is named ucloud.py; drop its own directory from sys.path so that
# "import ucloud" resolves to the SDK package, not to this script.
sys.path = [p for p in sys.path
            if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import requests  # noqa: E402
from ucloud import version as ucloud_version
from ucloud.client import Client
from ucloud.core.auth import Credential
from ucloud.core.transport import Transport, http
from ucloud.core.utils.middleware import Middleware
from ucloud.services.ucdn.client import UCDNClient

PUBLISHED_PUBLIC_KEY = "ucloudsomeone@example.com1296235120854146120"
WHITELABEL_PUBLIC_KEY = "someone@example.com1296235120854146120"
PUBLISHED_PRIVATE_KEY = "46f09bb9fab4f12dfc160dae12273d5332b5debe"

# Synthetic (not vendor-issued) keys for the UCDN cases.
TEST_PUBLIC_KEY = "test-public-key-0123456789abcdef"
TEST_PRIVATE_KEY = "test-private-key-fedcba9876543210"


class CaptureTransport(Transport):
    """Records the SDK's outgoing Request and returns a canned RetCode 0 reply."""

    def __init__(self):
        self.requests = []

    def send(self, req, **options):
        self.requests.append(req)
        body = {"RetCode": 0, "Action": req.data.get("Action", "") + "Response",
                "TotalCount": 0, "TaskList": []}
        return http.Response(url=req.url, method=req.method, request=req,
                             status_code=200,
                             content=json.dumps(body).encode("utf-8"))


def make_client(cls, public_key, private_key, region=None):
    cfg = {"public_key": public_key, "private_key": private_key}
    if region is not None:
        cfg["region"] = region
    transport = CaptureTransport()
    client = cls(cfg, transport=transport, middleware=Middleware())
    return client, transport


def build_case(name, description, source, public_key, private_key, sdk_call,
               sdk_args, client_config_region, captured, published_signature):
    data = captured.data  # dict exactly as handed to requests (insertion order)
    params = [[k, v] for k, v in data.items() if k not in ("PublicKey", "Signature")]
    for k, v in data.items():
        assert isinstance(v, str), (name, k, v)
    signed = sorted(((k, v) for k, v in data.items() if k != "Signature"),
                    key=lambda kv: kv[0])
    canonical = "".join(k + v for k, v in signed)
    string_to_sign = canonical + private_key
    signature = data["Signature"]
    # Independent re-check of the SDK result (plain SHA-1, lowercase hex).
    assert hashlib.sha1(string_to_sign.encode("utf-8")).hexdigest() == signature, name
    sdk_params = {k: v for k, v in data.items() if k != "Signature"}
    assert Credential(public_key, private_key).verify_ac(dict(sdk_params)) == signature
    if published_signature is not None:
        assert signature == published_signature, (name, signature, published_signature)
    form_body = requests.Request("POST", captured.url, data=data).prepare().body
    return {
        "input": {
            "case_name": name,
            "description": description,
            "source": source,
            "sdk_call": sdk_call,
            "sdk_args": sdk_args,
            "client_config_region": client_config_region,
            "public_key": public_key,
            "private_key": private_key,
            "params": params,
            "published_signature": published_signature,
        },
        "expected": {
            "sorted_param_names": ",".join(k for k, _ in signed),
            "canonical_params": canonical,
            "string_to_sign": string_to_sign,
            "string_to_sign_utf8_hex": string_to_sign.encode("utf-8").hex(),
            "signature": signature,
            "form_body": form_body,
        },
    }


def generic_case(name, description, source, public_key, private_key, region,
                 action, args, published_signature=None):
    client, transport = make_client(Client, public_key, private_key, region)
    client.invoke(action, dict(args))
    (captured,) = transport.requests
    sdk_args = {"Action": action}
    sdk_args.update(args)
    return build_case(name, description, source, public_key, private_key,
                      "ucloud.client.Client.invoke", sdk_args, region, captured,
                      published_signature)


def ucdn_case(name, description, method, args):
    client, transport = make_client(UCDNClient, TEST_PUBLIC_KEY, TEST_PRIVATE_KEY)
    getattr(client, method)(dict(args))
    (captured,) = transport.requests
    return build_case(name, description, "synthetic", TEST_PUBLIC_KEY,
                      TEST_PRIVATE_KEY,
                      "ucloud.services.ucdn.client.UCDNClient." + method,
                      args, None, captured, None)


PREFETCH = "describe_new_ucdn_prefetch_cache_task"
REFRESH = "describe_new_ucdn_refresh_cache_task"


def cases():
    yield generic_case(
        "published-describe-uhost-instance",
        "UCloud docs (API quick start / signature algorithm) published example.",
        "vendor-published: UCloud API docs, signature algorithm example",
        PUBLISHED_PUBLIC_KEY, PUBLISHED_PRIVATE_KEY, "cn-bj2",
        "DescribeUHostInstance", {"Limit": 10},
        published_signature="cba5cf5ec4d4233d206b1b54951e3787350a642f")
    yield generic_case(
        "published-whitelabel-describe-uhost-instance",
        "White-label copy of the UCloud docs: PublicKey without the 'ucloud' prefix.",
        "vendor-published: white-label UCloud docs (tnqacloud value)",
        WHITELABEL_PUBLIC_KEY, PUBLISHED_PRIVATE_KEY, "cn-bj2",
        "DescribeUHostInstance", {"Limit": 10},
        published_signature="4201919d267504385deb93af19e0197870fed36b")
    yield ucdn_case(
        "prefetch-time-window-is-dcdn-false",
        "Prefetch query with time window, paging, ProjectId and IsDcdn=False.",
        PREFETCH,
        {"ProjectId": "org-abc123", "BeginTime": 1700000000, "EndTime": 1700086400,
         "Offset": 0, "Limit": 100, "IsDcdn": False})
    yield ucdn_case(
        "prefetch-task-ids-is-dcdn-true",
        "Prefetch query with TaskId list (flattened TaskId.N) and IsDcdn=True.",
        PREFETCH,
        {"ProjectId": "org-abc123", "TaskId": ["20190121141137_4d8031d5",
                                                "20190121141138_5e9142e6"],
         "IsDcdn": True, "Offset": 20, "Limit": 10})
    yield ucdn_case(
        "refresh-time-window-is-dcdn-true",
        "Refresh query with time window, Status filter and IsDcdn=True.",
        REFRESH,
        {"BeginTime": 1735660800, "EndTime": 1735747199, "Status": "success",
         "Offset": 0, "Limit": 0, "IsDcdn": True})
    yield ucdn_case(
        "refresh-task-ids-is-dcdn-false",
        "Refresh query with three TaskIds, ProjectId, IsDcdn=False.",
        REFRESH,
        {"ProjectId": "org-abc123", "TaskId": ["task-a", "task-b", "task-c"],
         "IsDcdn": False})
    yield ucdn_case(
        "refresh-eleven-task-ids-sort-order",
        "Eleven TaskIds: byte-order sort puts TaskId.10 between TaskId.1 and TaskId.2.",
        REFRESH,
        {"TaskId": ["t%02d" % i for i in range(11)], "BeginTime": 1700000000,
         "EndTime": 1700003600})
    yield ucdn_case(
        "refresh-non-ascii-values",
        "Non-ASCII text in ProjectId and a TaskId; signed as UTF-8 bytes.",
        REFRESH,
        {"ProjectId": "org-项目-ü", "TaskId": ["任务-1", "tâche-2"],
         "Status": "wait", "Limit": 5})
    yield ucdn_case(
        "refresh-action-only",
        "No optional parameters: only Action and PublicKey are signed.",
        REFRESH, {})
    yield generic_case(
        "encoder-floats-generic-invoke",
        "Generic Client.invoke (no schema) with float values, to show the SDK "
        "encoder's float handling: integral floats become ints, others use "
        "Python str() (which can be scientific notation).",
        "synthetic", TEST_PUBLIC_KEY, TEST_PRIVATE_KEY, None,
        "DescribeNewUcdnRefreshCacheTask",
        {"Limit": 10.0, "Offset": 2.5, "BeginTime": 1700000000.0, "X-Small": 0.00001,
         "IsDcdn": True})


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata", "signing", "ucloud")
    for case in cases():
        d = os.path.join(out, case["input"]["case_name"])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "case.json"), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(case, ensure_ascii=False, indent=2) + "\n")
        print(case["input"]["case_name"], case["expected"]["signature"])
    print("ucloud-sdk-python3", ucloud_version.version, file=sys.stderr)


if __name__ == "__main__":
    main()
