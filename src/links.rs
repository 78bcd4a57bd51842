//! Signed, expiring download URLs for files in the store.
//!
//! A URL is `{base}/downloads/{asset_id}/{file}?expires={unix s}&signature={sig}`,
//! where `sig` is HMAC-SHA256 (URL-safe base64) over the path and the expiry
//! with a key only reeld knows. The view makes them (`master.url`, rendition
//! `url`); the download route checks them in constant time. A `download=NAME`
//! parameter may be added by the client: it only names the saved file, so it
//! is not signed.

use base64::Engine as _;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a download URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// `expires` or `signature` is missing or malformed.
    #[error("The URL is not a signed reeld download URL.")]
    Malformed,
    /// The signature does not match: altered, or made with another key.
    #[error("The URL's signature does not match.")]
    BadSignature,
    /// Past its expiry.
    #[error("This download URL has expired.")]
    Expired,
}

/// Makes and checks download URLs.
#[derive(Clone)]
pub struct Links {
    base_url: String,
    key: Vec<u8>,
    ttl_s: i64,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base_url", &self.base_url)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The path of a direct upload's byte route.
pub fn upload_path(upload_id: &str) -> String {
    format!("/uploads/{upload_id}")
}

/// What a signature is for: a download URL can never pass as an upload URL.
#[derive(Clone, Copy)]
enum Purpose {
    Download,
    Upload,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Purpose::Download => b"reeld-download-v1\n",
            Purpose::Upload => b"reeld-upload-v1\n",
        }
    }
}

/// The path of a stored file's download route.
pub fn download_path(asset_id: &str, file: &str) -> String {
    format!("/downloads/{asset_id}/{file}")
}

impl Links {
    /// The base every URL starts with, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// URLs under `base_url` (no trailing slash), signed with `key`;
    /// rendition URLs live about `ttl_s`.
    pub fn new(base_url: &str, key: &[u8], ttl_s: i64) -> Links {
        Links {
            base_url: base_url.trim_end_matches('/').to_owned(),
            key: key.to_vec(),
            ttl_s: ttl_s.max(1),
        }
    }

    /// The signed URL of `file` of `asset_id`, valid until `expires_s`.
    pub fn signed_url(&self, asset_id: &str, file: &str, expires_s: i64) -> String {
        let sig = self.signature(Purpose::Download, &download_path(asset_id, file), expires_s);
        format!(
            "{}{}?expires={expires_s}&signature={}",
            self.base_url,
            download_path(asset_id, file),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The signed URL a direct upload takes its bytes at, until `expires_s`.
    pub fn upload_url(&self, upload_id: &str, expires_s: i64) -> String {
        let path = upload_path(upload_id);
        let sig = self.signature(Purpose::Upload, &path, expires_s);
        format!(
            "{}{path}?expires={expires_s}&signature={}",
            self.base_url,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// Checks a request for an upload's byte route, as [`Links::verify`]
    /// checks a download.
    pub fn verify_upload(
        &self,
        upload_id: &str,
        expires: Option<&str>,
        signature: Option<&str>,
        now_s: i64,
    ) -> Result<i64, LinkError> {
        self.check(
            Purpose::Upload,
            &upload_path(upload_id),
            expires,
            signature,
            now_s,
        )
    }

    /// The expiry for a rendition URL made at `now_s`: at least the TTL
    /// ahead, rounded up to the hour so that an asset's JSON (and a cache in
    /// front of reeld) keeps the same URL for an hour.
    pub fn rendition_expiry(&self, now_s: i64) -> i64 {
        let at_least = now_s + self.ttl_s;
        (at_least + 3599) / 3600 * 3600
    }

    /// Checks the `expires` and `signature` query values of a request for
    /// `path` at `now_s`. Returns the expiry.
    pub fn verify(
        &self,
        path: &str,
        expires: Option<&str>,
        signature: Option<&str>,
        now_s: i64,
    ) -> Result<i64, LinkError> {
        self.check(Purpose::Download, path, expires, signature, now_s)
    }

    fn check(
        &self,
        purpose: Purpose,
        path: &str,
        expires: Option<&str>,
        signature: Option<&str>,
        now_s: i64,
    ) -> Result<i64, LinkError> {
        let expires_s: i64 = expires
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|e| e.parse().ok())
            .ok_or(LinkError::Malformed)?;
        let given = signature
            .and_then(|s| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .ok()
            })
            .ok_or(LinkError::Malformed)?;
        let mac = self.mac(purpose, path, expires_s);
        // verify_slice compares in constant time.
        mac.verify_slice(&given)
            .map_err(|_| LinkError::BadSignature)?;
        if now_s >= expires_s {
            return Err(LinkError::Expired);
        }
        Ok(expires_s)
    }

    fn mac(&self, purpose: Purpose, path: &str, expires_s: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose.tag());
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires_s.to_string().as_bytes());
        mac
    }

    fn signature(&self, purpose: Purpose, path: &str, expires_s: i64) -> Vec<u8> {
        self.mac(purpose, path, expires_s)
            .finalize()
            .into_bytes()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String, String) {
        let u = url::Url::parse(url).unwrap();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        (
            u.path().to_owned(),
            q["expires"].clone(),
            q["signature"].clone(),
        )
    }

    #[test]
    fn urls_verify_until_they_expire() {
        let links = Links::new("http://h:1/", b"k1", 60);
        let url = links.signed_url("A", "master.mp4", 1000);
        assert!(url.starts_with("http://h:1/downloads/A/master.mp4?expires=1000&signature="));
        let (path, exp, sig) = parts(&url);
        assert_eq!(links.verify(&path, Some(&exp), Some(&sig), 999), Ok(1000));
        assert_eq!(
            links.verify(&path, Some(&exp), Some(&sig), 1000),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn altered_or_foreign_urls_fail() {
        let links = Links::new("http://h", b"k1", 60);
        let (path, exp, sig) = parts(&links.signed_url("A", "master.mp4", 1000));
        let check = |p: &str, e: &str, s: &str| links.verify(p, Some(e), Some(s), 0);
        assert_eq!(
            check("/downloads/B/master.mp4", &exp, &sig),
            Err(LinkError::BadSignature)
        );
        assert_eq!(check(&path, "1001", &sig), Err(LinkError::BadSignature));
        let mut bad = sig.clone().into_bytes();
        bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            check(&path, &exp, std::str::from_utf8(&bad).unwrap()),
            Err(LinkError::BadSignature)
        );
        assert_eq!(check(&path, "-5", &sig), Err(LinkError::Malformed));
        assert_eq!(check(&path, &exp, "%%%"), Err(LinkError::Malformed));
        let other = Links::new("http://h", b"k2", 60);
        assert_eq!(
            other.verify(&path, Some(&exp), Some(&sig), 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            links.verify(&path, None, Some(&sig), 0),
            Err(LinkError::Malformed)
        );
    }

    #[test]
    fn upload_urls_are_not_download_urls() {
        let links = Links::new("http://h", b"k1", 60);
        let url = links.upload_url("U1", 1000);
        let (path, exp, sig) = parts(&url);
        assert_eq!(path, "/uploads/U1");
        assert_eq!(
            links.verify_upload("U1", Some(&exp), Some(&sig), 999),
            Ok(1000)
        );
        assert_eq!(
            links.verify_upload("U2", Some(&exp), Some(&sig), 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            links.verify(&path, Some(&exp), Some(&sig), 0),
            Err(LinkError::BadSignature)
        );
        let (dpath, dexp, dsig) = parts(&links.signed_url("U1", "x", 1000));
        assert_eq!(
            links.verify_upload("U1", Some(&dexp), Some(&dsig), 0),
            Err(LinkError::BadSignature),
            "{dpath}"
        );
    }

    #[test]
    fn rendition_expiry_rounds_up_to_the_hour() {
        let links = Links::new("http://h", b"k", 86_400);
        assert_eq!(links.rendition_expiry(0), 86_400);
        assert_eq!(links.rendition_expiry(1), 86_400 + 3600);
    }
}
