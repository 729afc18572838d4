//! Black box: the real binary with `--web.config.file`, reached by a real
//! TLS client (reqwest + rustls) over loopback, with a throwaway CA made by
//! rcgen for every test.

mod common;

use common::pki::{Ca, ExtendedKeyUsagePurpose, Leaf};
use common::{tempdir::TempDir, Exporter};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The vendor account points at a closed port: the exporter serves, the
/// account is simply down.
const CONFIG: &str = "accounts:\n  - name: shop\n    vendor: testing\n    endpoint: http://127.0.0.1:9\n    credentials: { id: shop, secret: nothing }\n";

/// bcrypt("prom-pass", cost 4): cheap enough for tests.
fn hash() -> String {
    bcrypt_hash("prom-pass")
}

fn bcrypt_hash(password: &str) -> String {
    // The binary's own dependency, used here only to make a fixture.
    bcrypt::hash(password, 4).unwrap()
}

/// A CA, a server certificate for 127.0.0.1/localhost, and client
/// certificates from a trusted and from an untrusted CA, written as PEM.
struct Pki {
    dir: TempDir,
    ca_pem: String,
    client_pem: String,
    stranger_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        let server_ca = Ca::new("test server CA");
        let client_ca = Ca::new("test client CA");
        let other_ca = Ca::new("untrusted CA");
        let Leaf {
            pem: server,
            key_pem: server_key,
            ..
        } = server_ca.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let Leaf {
            pem: client,
            key_pem: client_key,
            ..
        } = client_ca.leaf(&["prometheus"], ExtendedKeyUsagePurpose::ClientAuth);
        let Leaf {
            pem: stranger,
            key_pem: stranger_key,
            ..
        } = other_ca.leaf(&["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w("server.crt", &server);
        w("server.key", &server_key);
        w("client-ca.crt", &client_ca.pem);
        Pki {
            ca_pem: server_ca.pem,
            client_pem: format!("{client}{client_key}"),
            stranger_pem: format!("{stranger}{stranger_key}"),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `tls_server_config` with this PKI's server certificate plus `extra`
    /// lines (already indented).
    fn tls(&self, extra: &str) -> String {
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra}",
            self.path("server.crt"),
            self.path("server.key"),
        )
    }
}

/// Starts the binary with `web` as its web config. Ready once it has
/// bound (readiness over TLS is what the tests check).
fn start(web: &str, extra_args: &[&str]) -> Exporter {
    let dir = TempDir::new("web");
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let web_file = dir.path().join("web.yml");
    std::fs::write(&web_file, web).unwrap();
    let mut args: Vec<std::ffi::OsString> = vec![
        "--config.file".into(),
        cfg.into(),
        "--web.config.file".into(),
        web_file.into(),
        "--log.level".into(),
        "debug".into(),
    ];
    args.extend(extra_args.iter().map(Into::into));
    Exporter::spawn_in(dir, &args, &[])
}

fn client(pki: &Pki, identity: Option<&str>, max_tls12: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(20));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    if max_tls12 {
        b = b.max_tls_version(reqwest::tls::Version::TLS_1_2);
    }
    b.build().unwrap()
}

async fn get(
    c: &reqwest::Client,
    e: &Exporter,
    path: &str,
    auth: Option<(&str, &str)>,
) -> reqwest::Result<reqwest::Response> {
    let mut r = c
        .get(format!("https://{}{path}", e.addr))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "3");
    if let Some((u, p)) = auth {
        r = r.basic_auth(u, Some(p));
    }
    r.send().await
}

async fn started(web: String, extra_args: &'static [&'static str]) -> Exporter {
    tokio::task::spawn_blocking(move || start(&web, extra_args))
        .await
        .unwrap()
}

#[tokio::test]
async fn basic_auth_guards_metrics_and_leaves_health_open_over_tls() {
    let pki = Pki::new();
    let hash = hash();
    let web = format!(
        "{}basic_auth_users:\n  prometheus: \"{hash}\"\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        pki.tls("")
    );
    let exp = started(web, &[]).await;
    let c = client(&pki, None, false);

    for auth in [
        None,
        Some(("prometheus", "wrong-pass-77")),
        Some(("nobody", "prom-pass")),
    ] {
        let r = get(&c, &exp, "/metrics", auth).await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "challenge"
        );
        assert_eq!(r.headers()["x-frame-options"], "deny", "headers on 401 too");
    }
    let r = get(&c, &exp, "/metrics", Some(("prometheus", "prom-pass")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "deny");
    let body = r.text().await.unwrap();
    assert!(body.contains("cdn_vendor_up{"), "{body}");
    // A second request with the same credentials is served from the cache.
    let r = get(&c, &exp, "/", Some(("prometheus", "prom-pass")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in ["/-/healthy", "/-/ready"] {
        let r = get(&c, &exp, path, None).await.unwrap();
        assert_eq!(r.status(), 200, "{path} is exempt by default");
    }
    let logs = exp.logs();
    assert!(
        !logs.contains("prom-pass") && !logs.contains(&hash) && !logs.contains("wrong-pass-77"),
        "a password or hash was logged: {logs}"
    );
}

#[tokio::test]
async fn health_endpoints_need_auth_when_not_exempted() {
    let pki = Pki::new();
    let web = format!(
        "{}basic_auth_users:\n  prometheus: \"{}\"\n",
        pki.tls(""),
        hash()
    );
    let exp = started(web, &["--web.health-without-auth=false"]).await;
    let c = client(&pki, None, false);
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(get(&c, &exp, path, None).await.unwrap().status(), 401);
        let r = get(&c, &exp, path, Some(("prometheus", "prom-pass")))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[test]
fn basic_auth_works_without_tls() {
    let web = format!("basic_auth_users:\n  prometheus: \"{}\"\n", hash());
    let dir = TempDir::new("web-plain");
    let web_file = dir.path().join("web.yml");
    std::fs::write(&web_file, web).unwrap();
    // Exporter::start waits on /-/ready, which is exempt.
    let exp = Exporter::start(CONFIG, &["--web.config.file", web_file.to_str().unwrap()]);
    let (status, _) = common::http_get(&exp.addr, "/metrics", &[]).unwrap();
    assert_eq!(status, 401);
    // "prometheus:prom-pass"
    let (status, body) = common::http_get(
        &exp.addr,
        "/metrics",
        &[
            ("Authorization", "Basic cHJvbWV0aGV1czpwcm9tLXBhc3M="),
            ("X-Prometheus-Scrape-Timeout-Seconds", "3"),
        ],
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_refused() {
    let pki = Pki::new();
    let exp = started(pki.tls(""), &[]).await;
    let addr = exp.addr.clone();
    let plain = tokio::task::spawn_blocking(move || common::http_get(&addr, "/metrics", &[]))
        .await
        .unwrap();
    match plain {
        Err(_) => {}
        Ok((status, body)) => assert_ne!(status, 200, "plain HTTP got an answer: {body}"),
    }
    // The same port answers over TLS.
    let r = get(&client(&pki, None, false), &exp, "/-/healthy", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn tls12_client_is_refused_when_min_version_is_tls13() {
    let pki = Pki::new();
    let default = started(pki.tls(""), &[]).await;
    let r = get(&client(&pki, None, true), &default, "/-/healthy", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "TLS 1.2 is accepted by default");

    let strict = started(pki.tls("  min_version: TLS13\n"), &[]).await;
    let err = get(&client(&pki, None, true), &strict, "/-/healthy", None)
        .await
        .expect_err("a TLS 1.2 client must be refused");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let r = get(&client(&pki, None, false), &strict, "/-/healthy", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "TLS 1.3 is accepted");
}

#[tokio::test]
async fn require_and_verify_client_cert_accepts_only_certs_from_client_ca() {
    let pki = Pki::new();
    let web = pki.tls(&format!(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        pki.path("client-ca.crt")
    ));
    let exp = started(web, &[]).await;
    get(&client(&pki, None, false), &exp, "/-/healthy", None)
        .await
        .expect_err("no client certificate must be refused");
    get(
        &client(&pki, Some(&pki.stranger_pem), false),
        &exp,
        "/-/healthy",
        None,
    )
    .await
    .expect_err("a certificate from another CA must be refused");
    for max_tls12 in [false, true] {
        let r = get(
            &client(&pki, Some(&pki.client_pem), max_tls12),
            &exp,
            "/metrics",
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "max_tls12={max_tls12}");
    }
}

#[tokio::test]
async fn other_client_auth_types_follow_go_semantics() {
    let pki = Pki::new();
    // RequireAnyClientCert: some certificate is required, any CA will do.
    let any = started(pki.tls("  client_auth_type: RequireAnyClientCert\n"), &[]).await;
    get(&client(&pki, None, false), &any, "/-/healthy", None)
        .await
        .expect_err("RequireAnyClientCert without a certificate");
    let r = get(
        &client(&pki, Some(&pki.stranger_pem), false),
        &any,
        "/-/healthy",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // VerifyClientCertIfGiven: none is fine, a bad one is not.
    let if_given = started(
        pki.tls(&format!(
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {}\n",
            pki.path("client-ca.crt")
        )),
        &[],
    )
    .await;
    let r = get(&client(&pki, None, false), &if_given, "/-/healthy", None)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    get(
        &client(&pki, Some(&pki.stranger_pem), false),
        &if_given,
        "/-/healthy",
        None,
    )
    .await
    .expect_err("VerifyClientCertIfGiven with an untrusted certificate");
    let r = get(
        &client(&pki, Some(&pki.client_pem), false),
        &if_given,
        "/-/healthy",
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
}

/// Runs the binary with `web` as its web config and returns (exit code,
/// stderr); it must stop before serving.
fn run_with_web_config(dir: &Path, web: &str) -> (Option<i32>, String) {
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let web_file = dir.join("web.yml");
    std::fs::write(&web_file, web).unwrap();
    let out = Command::new(common::binary())
        .arg("--config.file")
        .arg(&cfg)
        .arg("--web.listen-address")
        .arg("127.0.0.1:0")
        .arg("--web.config.file")
        .arg(&web_file)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_web_config_exits_non_zero_naming_file_and_key() {
    let pki = Pki::new();
    let dir = TempDir::new("web-bad");
    let file = dir.path().join("web.yml").display().to_string();
    let cases = [
        (
            pki.tls("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "tls_server_config.cipher_suites",
            "unknown field `cipher_suites`",
        ),
        (
            pki.tls("  min_version: TLS11\n"),
            "tls_server_config.min_version",
            "unknown TLS version \"TLS11\"",
        ),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                pki.path("missing.crt"),
                pki.path("server.key")
            ),
            "tls_server_config.cert_file",
            "cannot read",
        ),
        (
            "basic_auth_users:\n  prometheus: \"$2y$10$tooshort\"\n".to_string(),
            "basic_auth_users.prometheus",
            "not a valid bcrypt hash",
        ),
        (
            pki.tls("  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file",
            "is required",
        ),
    ];
    for (web, key, message) in cases {
        let (code, stderr) = run_with_web_config(dir.path(), &web);
        assert_eq!(code, Some(2), "{key}: {stderr}");
        let expected = format!("{file}: key \"{key}\": {message}");
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("tooshort"), "hash echoed: {stderr}");
    }
}
