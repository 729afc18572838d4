#!/usr/bin/env python3
"""Writes the fuzz seed corpus (fuzz/corpus/<target>/) from testdata/responses
and the config examples. Input layouts are described in src/fuzzing.rs.

Run from the repository root: python3 tools/fuzz/seeds.py
The web-config seeds need `openssl` (a throwaway self-signed test certificate).
"""
import hashlib
import os
import pathlib
import re
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"

# Indices into STATUSES in src/fuzzing.rs.
S200, S400, S401, S403, S429, S500, S502 = 0, 7, 8, 9, 11, 12, 13

# Query table per vendor (variant 0), as src/fuzzing.rs plans it:
# list queries first, then re-checks, then quota.
QUERIES = {
    # 0-2 list (file, dir, prefetch), 3-5 by id, 6 quota
    "volcengine": {"list": [0, 1, 2], "by_id": [3, 5], "quota": [6]},
    # 0-3 list (file, dir, regex, prefetch), 4-7 by id, 8 quota
    "aliyun": {"list": [0, 1, 3], "by_id": [4, 7], "quota": [8]},
    # 0 list prefetch, 1 list refresh, 2-3 by id
    "ucloud": {"list": [0, 1], "by_id": [2, 3], "quota": [0]},
    # 0 list fetch, 1 list purge, 2-3 re-check listings
    "cdnetworks": {"list": [0, 1], "by_id": [2, 3], "quota": [1]},
}


def write(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    (d / name).write_bytes(data)


def vendor_seed(query, status, variant, page, body, headers=b""):
    out = bytes([query, status, variant]) + page.to_bytes(4, "little")
    if headers:
        out += headers + b"\0"
    return out + body


def status_guess(name):
    n = name.lower()
    if "throttl" in n or "too-many" in n or "flow_limit" in n or "429" in n:
        return S429
    if "internal" in n or "unavailable" in n:
        return S500
    if "unauthorized" in n or "401" in n:
        return S401
    if any(k in n for k in ("access", "signature", "invalid-access", "user")):
        return S403
    return S400


def vendors():
    for vendor, q in QUERIES.items():
        for f in sorted((ROOT / "testdata" / "responses" / vendor).glob("*.json")):
            body = f.read_bytes()
            name = f.name
            if "quota" in name:
                kind = "quota"
            elif "by-id" in name or "by_id" in name:
                kind = "by_id"
            else:
                kind = "list"
            if name.startswith("error"):
                # The same error body with a 200 (vendors that put errors in
                # a 200 answer) and with the status it usually comes with.
                write(vendor, vendor_seed(q["list"][0], S200, 0, 1, body))
                write(vendor, vendor_seed(q["list"][0], status_guess(name), 0, 1, body,
                                          b"Retry-After: 3\nX-Cnc-Request-Id: r-1"))
            else:
                for i, query in enumerate(q[kind]):
                    write(vendor, vendor_seed(query, S200, i % 2, 1 + i, body))
        # Second page, a gateway HTML page, empty and truncated bodies.
        write(vendor, vendor_seed(q["list"][0], S502, 0, 2,
                                  b"<html><body>502 Bad Gateway</body></html>",
                                  b"Content-Type: text/html"))
        write(vendor, vendor_seed(q["list"][0], S200, 0, 1, b""))
        write(vendor, vendor_seed(q["list"][-1], S200, 1, 0xFFFFFFFF, b"{\"a\":"))


HEADERS = [
    "GMT+08:00", "GMT-05:30", "UTC+8", "+0800", "GMT", "GMT+14:00", "GMT+-1",
    "2024-01-02 03:04:05", " 1999-12-31 23:59:59 ", "2024-02-29 00:00:00",
    "2023-10-26T08:23:22Z", "2023-10-26T08:23Z", "2023-10-26T08:23:22+08:00",
    "45%", " 100 % ", "-3%", "120", "0", "18446744073709551615",
    "Wed, 21 Oct 2015 07:28:00 GMT", "2/1s", "1/5m", "1/10m", "4294967295/1ns",
    "30/1s 500ms", "1/100y",
]


def headers_time():
    for h in HEADERS:
        write("headers_time", h.encode())


def files(*parts):
    return b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)


def config():
    example = (ROOT / "examples" / "cdn-task-exporter.yml").read_text()
    write("config", example.encode())
    resolved = re.sub(r'"\$\{[A-Z_]+\}"', '"${F1}"', example)
    write("config", files(resolved, "s3cr3t-from-env"))
    write("config", files(
        "accounts:\n  - name: a\n    vendor: aliyun\n    credentials:\n"
        "      id_file: f1\n      secret_file: f2\n      session_token: \"${F3}\"\n"
        "    options: { signature: acs3, page_size: 50 }\n"
        "    task_types: [refresh_file, prefetch]\n"
        "    rate_budget: { DescribeRefreshTasks: 2/1s, DescribeRefreshQuota: 1/1s }\n",
        "LTAIid\n", "secret-in-a-file\n", "sts-token"))
    write("config", files(
        "scrape_timeout: 5s\nscrape_timeout_margin: 250ms\nmax_response_bytes: 1048576\n"
        "defaults: { lookback: 2h, overlap: 5m, retries: 2, max_tasks: 1000, "
        "request_timeout: 3s, max_permit_wait: 1s, quota_interval: 10m }\n"
        "accounts:\n  - name: u\n    vendor: ucloud\n    endpoint: http://127.0.0.1:9/\n"
        "    credentials: { id: pub, secret: \"${F1}\" }\n"
        "    options: { project_id: org-1, is_dcdn: true, page_size: 1000 }\n"
        "  - name: c\n    vendor: cdnetworks\n    credentials: { id: user, secret: key }\n"
        "    options: { auth: aksk, page_size: 1 }\n    safety_fraction: 0.1\n"
        "    rate_budget: { FetchItemIdQuery: 1/10m, PurgeItemIdQuery: 1/1s }\n",
        "priv"))
    write("config", files(
        "accounts:\n  - name: v\n    vendor: volcengine\n    credentials: { id: AK, secret: SK }\n"
        "    domain: www.example.com\n    min_refresh_interval: 1s\n    lookback: 400d\n"
        "    options: { action: ListContentTask, cloud_account_ids: [a, b], page_size: 100 }\n"))
    write("config", files(
        "accounts:\n  - name: t\n    vendor: testing\n    credentials: { id: i, secret: s }\n"
        "    rate_budget: { X: 0/1s }\n    retries: 9\n    safety_fraction: 2\n"
        "  - name: t\n    vendor: nope\n"))
    write("config", b"accounts: []\n")
    write("config", b"a: &a [*a]\n")


def web_config():
    with tempfile.TemporaryDirectory() as d:
        key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
             "-days", "3650", "-subj", "/CN=fuzz.invalid"],
            check=True, capture_output=True)
        key_pem, crt_pem = open(key, "rb").read(), open(crt, "rb").read()
    readme_example = (
        "tls_server_config:\n  cert_file: f1\n  key_file: f2\n  min_version: TLS12\n"
        "  client_auth_type: NoClientCert\n"
        "basic_auth_users:\n  prometheus: $2y$10$X0ld/LN1oqNRdUdYbNiwXeG4AjYqsA4i7L7w1nHmFoHDoxEDVMWOe\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
    write("web_config", files(readme_example, crt_pem, key_pem))
    write("web_config", files(
        "tls_server_config:\n  cert_file: f1\n  key_file: f2\n  min_version: TLS13\n"
        "  max_version: TLS12\n  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: f1\n", crt_pem, key_pem))
    write("web_config", files(
        "tls_server_config:\n  cert_file: f1\n  key_file: f2\n"
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: f3\n",
        crt_pem, key_pem, crt_pem))
    write("web_config", files(
        "tls_server_config:\n  cert_file: f1\n  key_file: f1\n  min_version: TLS11\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
    write("web_config", b"basic_auth_users:\n  'a:b': x\n  u: $2b$03$abc\n"
                        b"http_server_config:\n  headers:\n    Content-Length: '1'\n    'bad name': v\n")
    write("web_config", b"")
    write("web_config", b"tls_server_config: {}\n")


if __name__ == "__main__":
    vendors()
    headers_time()
    config()
    web_config()
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(CORPUS / t)))
