#!/usr/bin/env python3
"""Generate AWS SigV4 signing test vectors for CloudFront with botocore.

Every value under "expected" comes out of botocore's own code:

* botocore.auth.SigV4Auth.add_auth signs the request.  Its intermediates are
  recorded by wrapping the instance's own methods: canonical_request,
  string_to_sign, signature (and _sign, for kDate/kRegion/kService/kSigning
  in the order SigV4Auth.signature derives them); canonical_query_string,
  canonical_headers and signed_headers are botocore's own helpers applied to
  the request it signed; credential_scope is SigV4Auth.credential_scope.
* "signer" cases call SigV4Auth.add_auth on an AWSRequest carrying exactly
  the headers our client sends (none before signing: botocore adds
  X-Amz-Date, X-Amz-Security-Token and derives Host from the URL).
* "client" cases run the real CloudFront client (botocore.session ->
  ListInvalidations / GetInvalidation) and stop it at the `before-send`
  event, so headers and URL are what the SDK would put on the wire
  (User-Agent is present when botocore signs but blacklisted; the amz-sdk-*
  headers are added after signing, so they are sent but not signed).
* "doc" cases are AWS's published worked examples (the IAM ListUsers
  example of the SigV4 guide and the get-vanilla case of the SigV4 test
  suite); botocore must reproduce the documented signature, which the
  script asserts before writing anything.

The clock (botocore.auth.get_current_datetime) is pinned; nothing is sent.

Usage:
    python3 -m venv /tmp/cfvenv && /tmp/cfvenv/bin/pip install botocore
    /tmp/cfvenv/bin/python tools/vectors/cloudfront.py [OUTPUT_DIR]
OUTPUT_DIR defaults to testdata/signing/cloudfront relative to the repo root.
"""
import datetime as _dt
import hashlib
import json
import os
import sys
from urllib.parse import urlsplit

import botocore
import botocore.auth as auth_mod
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
STS_AK = "ASIAIOSFODNN7EXAMPLE"
STS_SK = "exampleStsSecretKey/K7MDENG+bPxRfiCY"
STS_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token="
DIST = "EDFDVBD6EXAMPLE"
INV = "I2J0I21PCUYOIK"
HOST = "cloudfront.amazonaws.com"
T1 = "2024-02-19T03:23:34Z"
T2 = "2024-12-31T23:59:59Z"


class _Clock:
    now = None


def _pinned_now(remove_tzinfo=True):
    return _Clock.now


auth_mod.get_current_datetime = _pinned_now


def _at(ts):
    _Clock.now = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")


def _record(signer):
    rec = {"keys": []}
    orig_cr, orig_sts, orig_sig, orig_sign = (
        signer.canonical_request, signer.string_to_sign, signer.signature, signer._sign)

    def canonical_request(request):
        rec["canonical_request"] = orig_cr(request)
        return rec["canonical_request"]

    def string_to_sign(request, cr):
        rec["string_to_sign"] = orig_sts(request, cr)
        return rec["string_to_sign"]

    def signature(sts, request):
        rec["keys"] = []
        rec["signature"] = orig_sig(sts, request)
        return rec["signature"]

    def _sign(key, msg, hex=False):
        out = orig_sign(key, msg, hex=hex)
        if not hex:
            rec["keys"].append(out.hex())
        return out

    signer.canonical_request = canonical_request
    signer.string_to_sign = string_to_sign
    signer.signature = signature
    signer._sign = _sign
    return rec


def _expected(signer, rec, request):
    # canonical query / headers / signed headers are cut out of botocore's
    # canonical request, not recomputed.
    cr = rec["canonical_request"]
    lines = cr.split("\n")
    blank = lines.index("", 3)
    k_date, k_region, k_service, k_signing = rec["keys"]
    sent = [[k, v if isinstance(v, str) else v.decode()] for k, v in request.headers.items()]
    if not any(k.lower() == "host" for k, _ in sent):
        sent.append(["Host", auth_mod._host_from_url(request.url)])
    return {
        "x_amz_date": request.context["timestamp"],
        "payload_hash": lines[-1],
        "canonical_query": lines[2],
        "canonical_headers": "".join(l + "\n" for l in lines[3:blank]),
        "signed_headers": lines[blank + 1],
        "canonical_request": rec["canonical_request"],
        "hashed_canonical_request": hashlib.sha256(
            rec["canonical_request"].encode()).hexdigest(),
        "credential_scope": signer.credential_scope(request),
        "string_to_sign": rec["string_to_sign"],
        "k_date": k_date,
        "k_region": k_region,
        "k_service": k_service,
        "k_signing": k_signing,
        "signature": rec["signature"],
        "authorization": dict(sent)["Authorization"],
        "headers_sent": sent,
        "url_sent": request.url,
    }


def _split(url):
    p = urlsplit(url)
    query = [list(kv.split("=", 1)) for kv in p.query.split("&")] if p.query else []
    return p.netloc, p.path, query


def signer_case(name, url, ts, ak=AK, sk=SK, token=None, headers=None,
                region="us-east-1", service="cloudfront", doc=None):
    _at(ts)
    request = AWSRequest(method="GET", url=url, headers=dict(headers or {}))
    signer = SigV4Auth(Credentials(ak, sk, token), service, region)
    rec = _record(signer)
    signer.add_auth(request)
    host, path, query = _split(url)
    expected = _expected(signer, rec, request)
    if doc:
        for k, v in doc.items():
            assert expected[k] == v, f"{name}: botocore {k} {expected[k]!r} != documented {v!r}"
        expected["documented"] = doc
    return {
        "input": {
            "case_name": name, "kind": "doc" if doc else "signer", "method": "GET",
            "scheme": urlsplit(url).scheme, "host": host, "path": path, "query": query,
            "headers": [[k, v] for k, v in (headers or {}).items()],
            "access_key_id": ak, "secret_access_key": sk, "session_token": token,
            "region": region, "service": service, "timestamp": ts,
        },
        "expected": expected,
    }


def client_case(name, op, params, ts, ak=AK, sk=SK, token=None):
    _at(ts)
    session = botocore.session.get_session()
    client = session.create_client(
        "cloudfront", region_name="us-east-1", aws_access_key_id=ak,
        aws_secret_access_key=sk, aws_session_token=token)
    captured = {}

    def before_send(request, **_):
        captured["request"] = request
        return AWSResponse(request.url, 200, {}, None)

    signer_box = {}
    orig_init = SigV4Auth.__init__

    def init(self, *a, **kw):
        orig_init(self, *a, **kw)
        signer_box["rec"] = _record(self)
        signer_box["signer"] = self
        orig_add = self.add_auth

        def add_auth(request):
            # The headers present when botocore signs (amz-sdk-* come later).
            signer_box["before"] = [[k, v if isinstance(v, str) else v.decode()]
                                    for k, v in request.headers.items()]
            return orig_add(request)

        self.add_auth = add_auth

    SigV4Auth.__init__ = init
    client.meta.events.register("before-send", before_send)
    try:
        getattr(client, op)(**params)
    except Exception:  # the empty fake answer does not parse; the request is what we want
        pass
    finally:
        SigV4Auth.__init__ = orig_init
    request = captured["request"]
    signer, rec = signer_box["signer"], signer_box["rec"]
    x_date = request.headers["X-Amz-Date"]
    request.context = {"timestamp": x_date if isinstance(x_date, str) else x_date.decode()}
    expected = _expected(signer, rec, request)
    host, path, query = _split(request.url)
    pre = signer_box["before"]
    return {
        "input": {
            "case_name": name, "kind": "client", "method": request.method,
            "scheme": urlsplit(request.url).scheme, "host": host, "path": path,
            "query": query, "headers": pre, "access_key_id": ak,
            "secret_access_key": sk, "session_token": token, "region": "us-east-1",
            "service": "cloudfront", "timestamp": ts,
        },
        "expected": expected,
    }


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata/signing/cloudfront")
    base = f"https://{HOST}/2020-05-31/distribution/{DIST}/invalidation"
    cases = [
        signer_case("list-invalidations-first-page", f"{base}?MaxItems=100", T1),
        signer_case("list-invalidations-marker", f"{base}?Marker={INV}&MaxItems=25", T1),
        signer_case("list-invalidations-sts", f"{base}?MaxItems=100", T2,
                    ak=STS_AK, sk=STS_SK, token=STS_TOKEN),
        signer_case("get-invalidation", f"{base}/{INV}", T2),
        signer_case("get-invalidation-local-port",
                    f"http://127.0.0.1:18080/2020-05-31/distribution/{DIST}/invalidation/{INV}",
                    T1),
        signer_case("list-invalidations-port-443-stripped",
                    f"https://{HOST}:443/2020-05-31/distribution/{DIST}/invalidation?MaxItems=100",
                    T1),
        client_case("client-list-invalidations", "list_invalidations",
                    {"DistributionId": DIST, "MaxItems": "50", "Marker": INV}, T1),
        client_case("client-get-invalidation-sts", "get_invalidation",
                    {"DistributionId": DIST, "Id": INV}, T2,
                    ak=STS_AK, sk=STS_SK, token=STS_TOKEN),
        # AWS SigV4 guide, "Examples of how to derive a signing key / create a
        # signed request" (IAM ListUsers, 2015-08-30 12:36:00 UTC).
        signer_case(
            "doc-iam-list-users",
            "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
            "2015-08-30T12:36:00Z", ak="AKIDEXAMPLE",
            sk="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            service="iam",
            doc={
                "hashed_canonical_request":
                    "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
                "signature":
                    "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            }),
        # AWS SigV4 test suite, get-vanilla.
        signer_case(
            "doc-get-vanilla", "https://example.amazonaws.com/", "2015-08-30T12:36:00Z",
            ak="AKIDEXAMPLE", sk="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            service="service",
            doc={
                "signature":
                    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            }),
    ]
    for c in cases:
        d = os.path.join(out, c["input"]["case_name"])
        os.makedirs(d, exist_ok=True)
        c["generator"] = {"botocore": botocore.__version__,
                          "script": "tools/vectors/cloudfront.py"}
        with open(os.path.join(d, "case.json"), "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
