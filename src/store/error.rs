//! Store failures and what kind of problem each is.
//!
//! Three kinds, because each asks for a different answer:
//! - **Misconfigured** (credentials refused, no such bucket, wrong region):
//!   no retry helps until an operator acts, so the queue pauses and the job
//!   goes back unharmed.
//! - **Unavailable** (connection refused, timeouts, 5xx, throttling): the
//!   store will come back, so the operation is retried in place with capped
//!   backoff and the job keeps its attempts.
//! - **Failed** (anything else, such as a local disk error): the job's
//!   ordinary retry with an attempt used, so a real fault still ends.

use std::error::Error as _;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be set up from the config.
    #[error("cannot open the store {what}: {source}")]
    Open {
        /// The store's description.
        what: String,
        /// The cause.
        source: object_store::Error,
    },
    /// A local file to upload could not be read, or one downloaded to
    /// could not be written.
    #[error("cannot use the local file {path}: {source}")]
    ReadLocal {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The store refused or failed an operation.
    #[error("store operation on {key} failed: {source}")]
    Operation {
        /// The object key.
        key: String,
        /// The cause.
        source: object_store::Error,
    },
}

/// What kind of problem a store failure is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// An operator must fix the config or the server's permissions.
    Misconfigured,
    /// The store is down or overloaded for now.
    Unavailable,
    /// Neither: retried as an ordinary job failure.
    Failed,
}

impl StoreError {
    /// Wraps a failure of an operation on `key` (an object or a prefix).
    pub fn on<K: std::fmt::Display + ?Sized>(
        key: &K,
    ) -> impl Fn(object_store::Error) -> StoreError + Copy + '_ {
        move |source| StoreError::Operation {
            key: key.to_string(),
            source,
        }
    }

    /// Wraps a failure of reading or writing the local file `path`.
    pub fn local(path: &std::path::Path) -> impl Fn(std::io::Error) -> StoreError + Copy + '_ {
        move |source| StoreError::ReadLocal {
            path: path.display().to_string(),
            source,
        }
    }

    /// What kind of problem this is.
    pub fn problem(&self) -> Problem {
        match self {
            StoreError::Open { .. } => Problem::Misconfigured,
            StoreError::ReadLocal { .. } => Problem::Failed,
            StoreError::Operation { source, .. } => classify(source),
        }
    }

    /// Whether retrying later may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        self.problem() != Problem::Misconfigured
    }

    /// The whole cause chain in one line (object_store puts the server's
    /// status and S3 error code in the sources).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(e) = source {
            let more = e.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = e.source();
        }
        text
    }

    /// For a misconfigured store: one sentence on what is wrong, and what
    /// to check, naming the settings involved.
    pub fn advice(&self, store: &str) -> String {
        let chain = self.chain();
        let code = s3_code(&chain);
        let status = http_status(&chain);
        let why = match (status, code.as_deref()) {
            (_, Some("NoSuchBucket")) => {
                return format!(
                    "The bucket of {store} does not exist. Create it (for MinIO: `mc mb ALIAS/BUCKET`) \
                     or correct [storage] url, then reload reeld (SIGHUP)."
                );
            }
            (
                _,
                Some(
                    code @ ("InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "InvalidToken"),
                ),
            ) => {
                format!("{store} does not accept reeld's credentials ({code})")
            }
            (Some(401), _) | (_, Some("AccessDenied")) | (Some(403), _) => {
                format!(
                    "{store} refused the request ({}{})",
                    status.map(|s| format!("HTTP {s}")).unwrap_or_default(),
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )
            }
            (Some(301 | 307), _)
            | (_, Some("PermanentRedirect" | "AuthorizationHeaderMalformed")) => {
                return format!(
                    "{store} answered for another region. Set [storage.s3] region to the bucket's \
                     region, then reload reeld (SIGHUP)."
                );
            }
            _ => {
                return format!(
                    "{store} cannot be used: {chain}. Check [storage] in the config, then reload \
                     reeld (SIGHUP)."
                );
            }
        };
        format!(
            "{why}. Check [storage.s3] access_key_id and secret_access_key, and that the key's \
             policy allows s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucket and \
             s3:AbortMultipartUpload on the bucket; then reload reeld (SIGHUP). Keys taken from \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are read at start: after changing those, \
             restart reeld."
        )
    }
}

/// Classifies an object_store error.
pub fn classify(e: &object_store::Error) -> Problem {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Problem::Misconfigured,
        E::NotFound { .. } => {
            // A missing bucket answers 404 too, with its own code.
            if s3_code(&chain_of(e)).as_deref() == Some("NoSuchBucket") {
                Problem::Misconfigured
            } else {
                Problem::Failed
            }
        }
        E::Generic { .. } => classify_generic(e),
        _ => Problem::Failed,
    }
}

fn classify_generic(e: &object_store::Error) -> Problem {
    // Connect errors, timeouts and dropped connections surface as an
    // HttpError somewhere in the chain. Its other kinds (a body that does
    // not decode, a request that cannot even be built) are not outages.
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(http) = inner.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            return match http.kind() {
                K::Connect | K::Request | K::Timeout | K::Interrupted => Problem::Unavailable,
                _ => Problem::Failed,
            };
        }
        source = inner.source();
    }
    let chain = chain_of(e);
    if let Some(code) = s3_code(&chain)
        && matches!(
            code.as_str(),
            "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "NoSuchBucket"
                | "InvalidBucketName"
                | "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired"
        )
    {
        return Problem::Misconfigured;
    }
    // Errors a server reports in the body of a 200 (a completion that
    // failed late) carry no status, only their code.
    if let Some(code) = s3_code(&chain)
        && matches!(
            code.as_str(),
            "InternalError" | "SlowDown" | "ServiceUnavailable" | "RequestTimeout"
        )
    {
        return Problem::Unavailable;
    }
    if chain.contains("Received redirect without LOCATION") {
        return Problem::Misconfigured;
    }
    match http_status(&chain) {
        // 501 Not Implemented is an answer, not an outage.
        Some(501) => Problem::Failed,
        Some(408 | 429) | Some(500..=599) => Problem::Unavailable,
        Some(301 | 307 | 401 | 403) => Problem::Misconfigured,
        Some(_) => Problem::Failed,
        // A credential provider, or an error without a response.
        None => Problem::Failed,
    }
}

fn chain_of(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The HTTP status in object_store's "non-2xx status code: 503 …" text.
fn http_status(chain: &str) -> Option<u16> {
    let at = chain.find("status code: ")? + "status code: ".len();
    chain.get(at..at + 3)?.parse().ok()
}

/// The S3 error code in a response body (`<Code>NoSuchBucket</Code>`).
fn s3_code(chain: &str) -> Option<String> {
    let start = chain.find("<Code>")? + "<Code>".len();
    let len = chain[start..].find("</Code>")?;
    Some(chain[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        }
    }

    #[test]
    fn statuses_and_codes_are_classified() {
        let status = |s: &str| {
            classify(&generic(&format!(
                "Server returned non-2xx status code: {s}"
            )))
        };
        assert_eq!(
            status("503 Service Unavailable: <Code>SlowDown</Code>"),
            Problem::Unavailable
        );
        assert_eq!(status("429 Too Many Requests"), Problem::Unavailable);
        assert_eq!(status("500 Internal Server Error"), Problem::Unavailable);
        assert_eq!(status("403 Forbidden"), Problem::Misconfigured);
        assert_eq!(
            status("400 Bad Request: <Code>InvalidAccessKeyId</Code>"),
            Problem::Misconfigured
        );
        assert_eq!(
            status("400 Bad Request: <Code>EntityTooSmall</Code>"),
            Problem::Failed
        );
        let bucket = object_store::Error::NotFound {
            path: "assets/a/master.mp4".into(),
            source: "404 Not Found: <Error><Code>NoSuchBucket</Code></Error>".into(),
        };
        assert_eq!(classify(&bucket), Problem::Misconfigured);
        let key = object_store::Error::NotFound {
            path: "assets/a/master.mp4".into(),
            source: "404 Not Found: <Error><Code>NoSuchKey</Code></Error>".into(),
        };
        assert_eq!(classify(&key), Problem::Failed);
    }

    #[test]
    fn advice_names_the_settings_to_check() {
        let e = StoreError::Operation {
            key: "k".into(),
            source: generic("status code: 403 Forbidden: <Code>SignatureDoesNotMatch</Code>"),
        };
        let advice = e.advice("s3://media");
        assert!(advice.contains("SignatureDoesNotMatch"), "{advice}");
        assert!(advice.contains("secret_access_key"), "{advice}");
        assert!(advice.contains("SIGHUP"), "{advice}");
        let e = StoreError::Operation {
            key: "k".into(),
            source: generic("status code: 404 Not Found: <Code>NoSuchBucket</Code>"),
        };
        assert!(e.advice("s3://media").contains("does not exist"));
    }
}
