//! The `--web.config.file`: TLS, basic auth and extra response headers, in
//! the Prometheus exporter-toolkit format, so one file serves every exporter
//! on a host.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt        # relative paths are relative to this file
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12           # TLS12 (default) or TLS13
//!   max_version: TLS13           # optional
//! basic_auth_users:
//!   prometheus: $2y$10$...       # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! ```
//!
//! Parsing has two stages, as for the main config: raw serde structs that
//! reject unknown keys, then validation that loads the certificates and
//! checks every hash. Errors name the file and the key and never echo a
//! hash or a key.

use crate::config::{ConfigError, ConfigErrors};
use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Validated web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// Serve HTTPS with this config; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// user → bcrypt hash; basic auth is off when empty.
    pub basic_auth_users: Vec<(String, String)>,
    /// Added to (or replacing the same header in) every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for WebConfig {
    /// Names the users, never their hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self
                    .basic_auth_users
                    .iter()
                    .map(|(u, _)| u)
                    .collect::<Vec<_>>(),
            )
            .field("headers", &self.headers)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    tls_server_config: Option<RawTls>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    http_server_config: Option<RawHttp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    headers: Option<BTreeMap<String, String>>,
}

/// How a client certificate is asked for and checked; the names and meanings
/// are Go's `tls.ClientAuthType`, as exporter-toolkit uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is exporter-toolkit's older spelling.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// Headers the server itself must control; overriding them would break the
/// protocol or authentication.
const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "www-authenticate",
];

/// Reads and validates `path`. Relative certificate paths are resolved
/// against the file's directory, as exporter-toolkit does.
pub fn load(path: &Path) -> Result<WebConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            account: None,
            key: "-".into(),
            message: format!("cannot read file: {e}"),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    parse(&text, &file, &|p| {
        let p = base.join(p);
        std::fs::read(&p).map_err(|e| format!("cannot read {:?}: {e}", p.display().to_string()))
    })
}

/// Validates web-config text; `read_file` is injected so tests feed bytes.
pub fn parse(
    text: &str,
    file: &str,
    read_file: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<WebConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut error = |key: &str, message: String| {
        errors.push(ConfigError {
            file: file.to_owned(),
            account: None,
            key: key.to_owned(),
            message,
        })
    };
    let value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            error("-", format!("not valid YAML: {e}"));
            return Err(ConfigErrors(errors));
        }
    };
    // An empty file is valid and means plain HTTP without auth.
    let raw: RawWeb = if value.is_null() {
        RawWeb::default()
    } else {
        match serde_path_to_error::deserialize(value) {
            Ok(r) => r,
            Err(e) => {
                error(&e.path().to_string(), e.inner().to_string());
                return Err(ConfigErrors(errors));
            }
        }
    };

    let mut out = WebConfig::default();
    if let Some(tls) = raw.tls_server_config {
        match tls_config(tls, read_file) {
            Ok(c) => out.tls = Some(Arc::new(c)),
            Err(es) => {
                for (k, m) in es {
                    error(&format!("tls_server_config.{k}"), m);
                }
            }
        }
    }
    for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
        let key = format!("basic_auth_users.{user}");
        if user.is_empty() || user.contains(':') {
            error(
                &key,
                "a user name must be non-empty and must not contain ':'".into(),
            );
            continue;
        }
        // The hash itself is never echoed: it is a secret too.
        match hash.parse::<bcrypt::HashParts>() {
            Ok(parts) if (4..=31).contains(&parts.get_cost()) => {
                out.basic_auth_users.push((user, hash))
            }
            Ok(parts) => error(
                &key,
                format!("bcrypt cost {} is outside 4..=31", parts.get_cost()),
            ),
            Err(_) => error(
                &key,
                "not a valid bcrypt hash (expected $2a$, $2b$ or $2y$ and 60 characters)".into(),
            ),
        }
    }
    if let Some(headers) = raw.http_server_config.and_then(|h| h.headers) {
        for (name, value) in headers {
            let key = format!("http_server_config.headers.{name}");
            let Ok(n) = HeaderName::try_from(name.as_str()) else {
                error(&key, format!("{name:?} is not a valid header name"));
                continue;
            };
            if RESERVED_HEADERS.contains(&n.as_str()) {
                error(&key, format!("{name:?} is set by the server itself"));
                continue;
            }
            match HeaderValue::try_from(value.as_str()) {
                Ok(v) => out.headers.push((n, v)),
                Err(_) => error(&key, format!("{value:?} is not a valid header value")),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn tls_version(key: &str, s: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match s {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        _ => Err(format!(
            "unknown TLS version {s:?} (expected TLS12 or TLS13){}",
            if key == "min_version" && matches!(s, "TLS10" | "TLS11") {
                "; TLS 1.0 and 1.1 are not supported"
            } else {
                ""
            }
        )),
    }
}

type KeyErrors = Vec<(&'static str, String)>;

/// Builds the rustls server config, collecting every problem with the key
/// (below `tls_server_config`) that caused it.
fn tls_config(
    raw: RawTls,
    read_file: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<rustls::ServerConfig, KeyErrors> {
    let mut errs: KeyErrors = Vec::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let min = match raw.min_version.as_deref() {
        None => Some(&rustls::version::TLS12),
        Some(s) => tls_version("min_version", s)
            .map_err(|e| errs.push(("min_version", e)))
            .ok(),
    };
    let max = match raw.max_version.as_deref() {
        None => Some(&rustls::version::TLS13),
        Some(s) => tls_version("max_version", s)
            .map_err(|e| errs.push(("max_version", e)))
            .ok(),
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match (min, max) {
        (Some(min), Some(max)) => {
            let all = [&rustls::version::TLS12, &rustls::version::TLS13];
            let lo = all.iter().position(|v| v.version == min.version);
            let hi = all.iter().position(|v| v.version == max.version);
            match (lo, hi) {
                (Some(lo), Some(hi)) if lo <= hi => all[lo..=hi].to_vec(),
                _ => {
                    errs.push(("max_version", "is below min_version".into()));
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };

    let certs = match raw.cert_file.as_deref() {
        None | Some("") => {
            errs.push(("cert_file", "is required".into()));
            None
        }
        Some(p) => match read_file(p) {
            Err(e) => {
                errs.push(("cert_file", e));
                None
            }
            Ok(bytes) => {
                match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
                    Ok(c) if !c.is_empty() => Some(c),
                    Ok(_) => {
                        errs.push(("cert_file", format!("no certificate in {p:?}")));
                        None
                    }
                    Err(e) => {
                        errs.push(("cert_file", format!("bad PEM in {p:?}: {e}")));
                        None
                    }
                }
            }
        },
    };
    let key = match raw.key_file.as_deref() {
        None | Some("") => {
            errs.push(("key_file", "is required".into()));
            None
        }
        Some(p) => match read_file(p) {
            Err(e) => {
                errs.push(("key_file", e));
                None
            }
            // The error text of the PEM parser never includes key material.
            Ok(bytes) => PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| errs.push(("key_file", format!("no private key in {p:?}: {e}"))))
                .ok(),
        },
    };

    let client_auth = match ClientAuth::parse(raw.client_auth_type.as_deref().unwrap_or("")) {
        Some(c) => c,
        None => {
            errs.push((
                "client_auth_type",
                format!(
                    "unknown client auth type {:?} (expected NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
                    raw.client_auth_type.unwrap_or_default()
                ),
            ));
            ClientAuth::NoClientCert
        }
    };
    let ca_file = raw.client_ca_file.as_deref().filter(|p| !p.is_empty());
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(_) if client_auth == ClientAuth::NoClientCert => errs.push((
            "client_ca_file",
            "is set but client_auth_type is NoClientCert".into(),
        )),
        None if client_auth.verifies() => errs.push((
            "client_ca_file",
            format!("is required with client_auth_type {client_auth:?}"),
        )),
        Some(p) => match read_file(p) {
            Err(e) => errs.push(("client_ca_file", e)),
            Ok(bytes) => {
                for c in CertificateDer::pem_slice_iter(&bytes) {
                    match c
                        .map_err(|e| e.to_string())
                        .and_then(|c| roots.add(c).map_err(|e| format!("bad certificate: {e}")))
                    {
                        Ok(()) => {}
                        Err(e) => errs.push(("client_ca_file", format!("{p:?}: {e}"))),
                    }
                }
                if roots.is_empty() {
                    errs.push(("client_ca_file", format!("no certificate in {p:?}")));
                }
            }
        },
        None => {}
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let (Some(certs), Some(key)) = (certs, key) else {
        unreachable!("a missing certificate or key was recorded as an error");
    };

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| vec![("min_version", e.to_string())])?;
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match client_auth {
        ClientAuth::NoClientCert => None,
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Some(Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                provider: provider.clone(),
            }))
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                b.allow_unauthenticated()
            } else {
                b
            };
            Some(
                b.build()
                    .map_err(|e| vec![("client_ca_file", e.to_string())])?,
            )
        }
    };
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| vec![("key_file", format!("does not match cert_file: {e}"))])?;
    // The router speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate
/// is asked for (and, for the latter, required) but not checked against any
/// CA; the handshake signature still proves the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // bcrypt("secret", cost 4): cheap to verify in tests.
    const HASH: &str = "$2b$04$cs7Yi9O1kWC7a7g0TwE.l.DRVyh.XbFeBeYeJzJPqEiqNxSRAbpRG";

    fn no_files(p: &str) -> Result<Vec<u8>, String> {
        Err(format!("cannot read {p:?}: not found"))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text, "web.yml", &no_files)
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn empty_file_means_plain_http_without_auth() {
        let c = parse("", "web.yml", &no_files).unwrap();
        assert!(c.tls.is_none() && c.basic_auth_users.is_empty() && c.headers.is_empty());
    }

    #[test]
    fn users_and_headers_are_validated() {
        let c = parse(
            &format!(
                "basic_auth_users:\n  prom: \"{HASH}\"\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
            ),
            "web.yml",
            &no_files,
        )
        .unwrap();
        assert_eq!(c.basic_auth_users, vec![("prom".into(), HASH.into())]);
        assert_eq!(c.headers[0].0, "x-frame-options");
        assert!(!format!("{c:?}").contains(HASH), "Debug hides hashes");
    }

    #[test]
    fn unknown_key_is_named() {
        assert_eq!(
            errors("tls_server_config:\n  cert_file: a\n  cipher_suite: x\n"),
            vec!["web.yml: key \"tls_server_config.cipher_suite\": unknown field `cipher_suite`, expected one of `cert_file`, `key_file`, `client_auth_type`, `client_ca_file`, `min_version`, `max_version`"]
        );
    }

    #[test]
    fn bad_version_bad_hash_and_missing_files_are_all_reported() {
        let e = errors(
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS11\n\
             basic_auth_users:\n  prom: \"$2y$10$notahash\"\n\
             http_server_config:\n  headers:\n    Content-Length: \"1\"\n",
        );
        assert_eq!(
            e,
            vec![
                "web.yml: key \"tls_server_config.min_version\": unknown TLS version \"TLS11\" (expected TLS12 or TLS13); TLS 1.0 and 1.1 are not supported",
                "web.yml: key \"tls_server_config.cert_file\": cannot read \"c.pem\": not found",
                "web.yml: key \"tls_server_config.key_file\": cannot read \"k.pem\": not found",
                "web.yml: key \"basic_auth_users.prom\": not a valid bcrypt hash (expected $2a$, $2b$ or $2y$ and 60 characters)",
                "web.yml: key \"http_server_config.headers.Content-Length\": \"Content-Length\" is set by the server itself",
            ]
        );
        assert!(!e.concat().contains("notahash"), "hash not echoed");
    }

    #[test]
    fn client_auth_needs_a_consistent_ca() {
        let e = errors(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n",
        );
        assert!(e.iter().any(|e| e.contains("\"tls_server_config.client_ca_file\": is required with client_auth_type RequireAndVerifyClientCert")), "{e:?}");
        let e = errors(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Sometimes\n",
        );
        assert!(
            e.iter()
                .any(|e| e.contains("unknown client auth type \"Sometimes\"")),
            "{e:?}"
        );
        let e = errors("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n");
        assert!(
            e.iter()
                .any(|e| e.contains("is set but client_auth_type is NoClientCert")),
            "{e:?}"
        );
    }

    #[test]
    fn max_below_min_is_rejected() {
        let e = errors(
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
        );
        assert!(
            e.iter()
                .any(|e| e.contains("key \"tls_server_config.max_version\": is below min_version")),
            "{e:?}"
        );
    }

    #[test]
    fn user_names_with_colons_are_rejected() {
        let e = errors(&format!("basic_auth_users:\n  \"a:b\": \"{HASH}\"\n"));
        assert!(e[0].contains("must not contain ':'"), "{e:?}");
    }
}
