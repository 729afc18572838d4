//! Server side of the V4 signature family (AWS SigV4, Volcengine): parsing
//! the `Authorization` header a client sent, as the services do.

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `date/region/service/terminator`.
    pub credential_scope: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `ALGORITHM Credential=AK/scope, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(
    scheme: &crate::vendors::sigv4::Scheme,
    value: &str,
) -> Option<Authorization> {
    let rest = value
        .trim()
        .strip_prefix(scheme.algorithm)?
        .strip_prefix(' ')?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => cred = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => {}
        }
    }
    let (ak, scope) = cred?.split_once('/')?;
    Some(Authorization {
        access_key_id: ak.to_owned(),
        credential_scope: scope.to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: sig?.to_owned(),
    })
}
