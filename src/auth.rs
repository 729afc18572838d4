//! HTTP basic auth against bcrypt hashes from the web config, as an axum
//! middleware.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), and
//! Prometheus sends the same credentials with every scrape, so successful
//! checks are remembered. The cache key is a SHA-256 over the user, the
//! stored hash (a per-user salt) and the offered password: the plaintext is
//! never kept, and a leaked key is no easier to reverse than the stored
//! bcrypt hash is to reuse. Failures are never cached.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use subtle::ConstantTimeEq;

/// Successful checks remembered; the set is cleared when it fills up, so a
/// client cycling through passwords cannot grow it.
const CACHE_CAPACITY: usize = 256;

/// Paths answered without credentials when health checks are exempted.
pub const HEALTH_PATHS: &[&str] = &["/-/healthy", "/-/ready"];

/// Checks `Authorization: Basic` headers.
pub struct BasicAuth {
    users: Vec<(String, String)>,
    health_without_auth: bool,
    cache: Mutex<HashSet<[u8; 32]>>,
    /// A hash at the first user's cost, verified when the user is unknown
    /// so that unknown and known users take the same time.
    dummy: OnceLock<String>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .field("health_without_auth", &self.health_without_auth)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// `users` are (name, bcrypt hash) pairs, already validated.
    pub fn new(users: Vec<(String, String)>, health_without_auth: bool) -> BasicAuth {
        BasicAuth {
            users,
            health_without_auth,
            cache: Mutex::new(HashSet::new()),
            dummy: OnceLock::new(),
        }
    }

    /// Whether `path` needs credentials.
    pub fn protects(&self, path: &str) -> bool {
        !(self.health_without_auth && HEALTH_PATHS.contains(&path))
    }

    /// Whether an `Authorization` header value carries valid credentials.
    /// Blocking (bcrypt): call it off the async runtime.
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        // Compare against every user so the time taken does not depend on
        // which one (if any) matched.
        let mut found: Option<&str> = None;
        for (name, hash) in &self.users {
            if bool::from(name.as_bytes().ct_eq(user.as_bytes())) {
                found = Some(hash);
            }
        }
        let Some(hash) = found else {
            let dummy = self.dummy.get_or_init(|| {
                let cost = self
                    .users
                    .first()
                    .and_then(|(_, h)| h.parse::<bcrypt::HashParts>().ok())
                    .map_or(bcrypt::DEFAULT_COST, |p| p.get_cost());
                bcrypt::hash("not a password", cost).unwrap_or_default()
            });
            let _ = bcrypt::verify(&password, dummy);
            return false;
        };
        let key = cache_key(&user, hash, &password);
        if self.lock_cache().contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if ok {
            let mut cache = self.lock_cache();
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // The set holds no invariant a panicking holder could break.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    // Lengths first, so that no two (user, password) pairs share an input.
    h.update((user.len() as u64).to_be_bytes());
    h.update(user.as_bytes());
    h.update(hash.as_bytes());
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Decodes `Basic base64(user:password)`; the scheme is case-insensitive.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, creds) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The middleware: 401 with a `WWW-Authenticate: Basic` challenge unless
/// the request carries valid credentials or the path is exempt.
pub async fn require(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    guard(auth, req, next).await
}

/// [`require`] for a `BasicAuth` picked per request (a reload swaps the
/// users).
pub async fn guard(auth: Arc<BasicAuth>, req: Request, next: Next) -> Response {
    if !auth.protects(req.uri().path()) {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let checker = auth.clone();
    let ok = tokio::task::spawn_blocking(move || checker.check(header.as_deref()))
        .await
        .unwrap_or(false);
    if ok {
        return next.run(req).await;
    }
    tracing::debug!(path = %req.uri().path(), "basic auth rejected");
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"cdn-task-exporter\", charset=\"UTF-8\""),
        )],
        "Unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
        .into_bytes()
    }

    fn auth() -> BasicAuth {
        let hash = bcrypt::hash("s3cret:with colon", 4).unwrap();
        BasicAuth::new(vec![("prom".into(), hash)], true)
    }

    #[test]
    fn accepts_the_right_password_and_caches_it() {
        let a = auth();
        assert!(a.check(Some(&basic("prom", "s3cret:with colon"))));
        assert_eq!(a.lock_cache().len(), 1);
        assert!(a.check(Some(&basic("prom", "s3cret:with colon"))));
        assert_eq!(a.lock_cache().len(), 1);
    }

    #[test]
    fn rejects_wrong_password_unknown_user_and_garbage_without_caching() {
        let a = auth();
        assert!(!a.check(Some(&basic("prom", "wrong"))));
        assert!(!a.check(Some(&basic("other", "s3cret:with colon"))));
        assert!(!a.check(Some(b"Bearer abc")));
        assert!(!a.check(Some(b"Basic !!!")));
        assert!(!a.check(None));
        assert!(a.lock_cache().is_empty());
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let a = auth();
        let mut h = basic("prom", "s3cret:with colon");
        h[..5].copy_from_slice(b"bASIC");
        assert!(a.check(Some(&h)));
    }

    #[test]
    fn health_paths_are_exempt_only_when_configured() {
        assert!(!auth().protects("/-/healthy"));
        assert!(auth().protects("/metrics"));
        let strict = BasicAuth::new(vec![], false);
        assert!(strict.protects("/-/ready"));
    }

    #[test]
    fn cache_key_separates_user_and_password() {
        assert_ne!(cache_key("ab", "h", "c"), cache_key("a", "h", "bc"));
    }
}
