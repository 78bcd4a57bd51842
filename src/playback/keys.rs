//! RSA signing keys: made by aws-lc-rs, handed out once in the formats Mux
//! and Cloudflare use, and kept only as their public half.
//!
//! - Mux's `private_key` is the PEM text, base64-encoded.
//! - Cloudflare's `pem` is the same, and its `jwk` is the private key as a
//!   JWK (RFC 7517), base64-encoded JSON.
//!
//! reeld stores the public key (SPKI PEM) of a key it made for a caller, and
//! never the private key: like Mux, it cannot show it again. The one private
//! key it keeps is its own, for Cloudflare's token endpoint
//! (`POST …/stream/{uid}/token`), in `data/stream-token.key` (mode 0600).

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use sha2::Digest as _;

/// A key pair made for a caller.
pub struct NewKey {
    /// Its id (`kid` in tokens).
    pub id: String,
    /// The private key, PKCS#8 PEM.
    pub private_pem: String,
    /// The public key, SPKI PEM: what reeld keeps.
    pub public_pem: String,
    /// The private key as a JWK (JSON text).
    pub private_jwk: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("private_pem", &"<redacted>")
            .finish()
    }
}

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system's crypto failed to make a key.
    #[error("cannot generate an RSA key pair")]
    Generate,
    /// A private key that is not an RSA PKCS#8 or PKCS#1 PEM.
    #[error("the private key is not an RSA key in PEM form")]
    NotRsaPem,
}

impl NewKey {
    /// The private key as Mux hands it out (`private_key`) and Cloudflare
    /// (`pem`): the PEM text, base64.
    pub fn private_pem_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.private_pem)
    }

    /// Cloudflare's `jwk`: the JWK JSON, base64.
    pub fn private_jwk_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.private_jwk)
    }
}

/// A new 2048-bit RSA key pair with a fresh id.
pub fn generate(id: String) -> Result<NewKey, KeyError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
    let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair).map_err(|_| KeyError::Generate)?;
    let public =
        AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).map_err(|_| KeyError::Generate)?;
    let private_jwk = private_jwk(&id, pkcs8.as_ref()).ok_or(KeyError::Generate)?;
    Ok(NewKey {
        private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
        public_pem: pem("PUBLIC KEY", public.as_ref()),
        private_jwk,
        id,
    })
}

/// The public key (SPKI PEM) and a stable id for a private key's PEM text,
/// PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub fn public_of(private_pem: &str) -> Result<(String, String), KeyError> {
    let (label, der) = unpem(private_pem).ok_or(KeyError::NotRsaPem)?;
    let pair = match label.as_str() {
        "PRIVATE KEY" => KeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => KeyPair::from_der(&der),
        _ => return Err(KeyError::NotRsaPem),
    }
    .map_err(|_| KeyError::NotRsaPem)?;
    let public =
        AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).map_err(|_| KeyError::NotRsaPem)?;
    let digest = sha2::Sha256::digest(public.as_ref());
    let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok((id, pem("PUBLIC KEY", public.as_ref())))
}

/// `der` as PEM text under `label`, in 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and bytes of the first PEM block in `text`.
fn unpem(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_owned();
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let body: String = rest[label_end + 5..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label, der))
}

/// The private JWK of a PKCS#8 RSA key: the integers of its RSAPrivateKey
/// (RFC 8017) in base64url, with `kid` and `alg`.
fn private_jwk(kid: &str, pkcs8: &[u8]) -> Option<String> {
    use simple_asn1::ASN1Block;
    let outer = simple_asn1::from_der(pkcs8).ok()?;
    let ASN1Block::Sequence(_, info) = outer.first()? else {
        return None;
    };
    let inner = info.iter().find_map(|b| match b {
        ASN1Block::OctetString(_, bytes) => Some(bytes.clone()),
        _ => None,
    })?;
    let blocks = simple_asn1::from_der(&inner).ok()?;
    let ASN1Block::Sequence(_, fields) = blocks.first()? else {
        return None;
    };
    let ints: Vec<String> = fields
        .iter()
        .filter_map(|b| match b {
            ASN1Block::Integer(_, n) => {
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_bytes_be().1))
            }
            _ => None,
        })
        .collect();
    // version, n, e, d, p, q, dp, dq, qi
    let [_, n, e, d, p, q, dp, dq, qi] = ints.as_slice() else {
        return None;
    };
    Some(
        serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": n, "e": e, "d": d, "p": p, "q": q, "dp": dp, "dq": dq, "qi": qi,
        })
        .to_string(),
    )
}

/// reeld's own key for Cloudflare's token endpoint: its id and private PEM,
/// made once and kept at `path` (mode 0600).
pub fn own_token_key(
    path: &std::path::Path,
) -> Result<(String, String), crate::keys::KeyFileError> {
    let text = crate::keys::load_or_create(path, || {
        generate(String::new())
            .map(|k| k.private_pem)
            .unwrap_or_default()
    })?;
    let text = format!("{}\n", text.trim());
    let (id, _) = public_of(&text).map_err(|e| crate::keys::KeyFileError {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    Ok((id, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_reads_back_in_every_form() {
        let key = generate("k1".into()).unwrap();
        assert!(key.private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let (_, public) = public_of(&key.private_pem).unwrap();
        assert_eq!(public, key.public_pem);
        let jwk: serde_json::Value = serde_json::from_str(&key.private_jwk).unwrap();
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["e"], "AQAB");
        assert!(jwk["n"].as_str().unwrap().len() > 300);
        assert!(format!("{key:?}").contains("redacted"));
        assert!(!format!("{key:?}").contains("BEGIN"));
        // The PEM signs, and the kept public half checks the signature.
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap();
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
            &encoding,
        )
        .unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(key.public_pem.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(public_of("hello").is_err());
        assert!(
            public_of("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}
