//! `[storage]`: where outputs are stored, a local folder or an S3-compatible
//! bucket, and how reeld reaches and signs for the bucket.
//!
//! Credentials come from `[storage.s3]` or, when it leaves them out, from
//! the standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`) variables, so a systemd `EnvironmentFile` can hold
//! them instead of the config.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[storage.s3]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    /// `http(s)://host:port` of an S3-compatible server; absent for AWS.
    pub endpoint: Option<String>,
    /// Where clients reach the store, for presigned download URLs, when it
    /// differs from `endpoint` (MinIO on a private address behind a proxy).
    pub public_endpoint: Option<String>,
    /// The region to sign for.
    pub region: Option<String>,
    /// Access key id; `AWS_ACCESS_KEY_ID` when absent.
    pub access_key_id: Option<String>,
    /// Secret access key (redacted in `Debug`); `AWS_SECRET_ACCESS_KEY`
    /// when absent.
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint (test servers, MinIO on loopback).
    #[serde(default)]
    pub allow_http: bool,
    /// `https://BUCKET.host/key` instead of `https://host/BUCKET/key`
    /// (AWS's default; MinIO needs its domain configured for it).
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

impl fmt::Debug for RawS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawS3")
            .field("endpoint", &self.endpoint)
            .field("public_endpoint", &self.public_endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .finish()
    }
}

/// `[storage]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// `file://PATH` (relative allowed) or `s3://BUCKET`.
    pub url: String,
    /// Credentials and endpoint for `s3://`.
    pub s3: Option<RawS3>,
}

/// Where outputs are stored, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageConfig {
    /// A folder on local disk.
    Local {
        /// The root folder of the store.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// A validated `[storage.s3]`.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// The bucket name.
    pub bucket: String,
    /// Endpoint URL, or `None` for AWS.
    pub endpoint: Option<String>,
    /// Endpoint presigned URLs name, when not `endpoint`.
    pub public_endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// A session token, for temporary credentials.
    pub session_token: Option<Secret>,
    /// Whether plain HTTP is allowed.
    pub allow_http: bool,
    /// Bucket in the host name rather than the path.
    pub virtual_hosted_style: bool,
}

/// A string that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Validates `[storage]`. `env` looks up an environment variable (the
/// process's own, or a test's).
pub fn parse_storage(
    raw: &RawStorage,
    resolve: &dyn Fn(&Path) -> PathBuf,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StorageConfig, String> {
    if let Some(rest) = raw.url.strip_prefix("file://") {
        if rest.is_empty() {
            return Err("storage.url \"file://\" needs a path".to_owned());
        }
        if raw.s3.is_some() {
            return Err("storage.s3 is set but storage.url is a file:// URL".to_owned());
        }
        return Ok(StorageConfig::Local {
            root: resolve(Path::new(rest)),
        });
    }
    let Some(bucket) = raw.url.strip_prefix("s3://") else {
        return Err(format!(
            "storage.url {:?} must start with file:// or s3://",
            raw.url
        ));
    };
    let bucket = bucket.trim_end_matches('/');
    if bucket.is_empty() || bucket.contains('/') {
        return Err(format!(
            "storage.url {:?} must be s3://BUCKET with no path",
            raw.url
        ));
    }
    let Some(s3) = &raw.s3 else {
        return Err("storage.url is s3:// but the [storage.s3] table is missing".to_owned());
    };
    for (name, value) in [
        ("storage.s3.endpoint", &s3.endpoint),
        ("storage.s3.public_endpoint", &s3.public_endpoint),
    ] {
        if let Some(value) = value {
            check_endpoint(name, value, s3.allow_http)?;
        }
    }
    let from_env = |name: &str| env(name).filter(|v| !v.is_empty());
    let access_key_id = s3
        .access_key_id
        .clone()
        .or_else(|| from_env("AWS_ACCESS_KEY_ID"))
        .ok_or("storage.s3.access_key_id is not set and neither is AWS_ACCESS_KEY_ID".to_owned())?;
    let secret_access_key = s3
        .secret_access_key
        .clone()
        .or_else(|| from_env("AWS_SECRET_ACCESS_KEY"))
        .ok_or(
            "storage.s3.secret_access_key is not set and neither is AWS_SECRET_ACCESS_KEY"
                .to_owned(),
        )?;
    // A session token only goes with the variables' own key pair.
    let session_token = if s3.access_key_id.is_none() {
        from_env("AWS_SESSION_TOKEN").map(Secret)
    } else {
        None
    };
    let region = s3
        .region
        .clone()
        .or_else(|| from_env("AWS_REGION"))
        .or_else(|| from_env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    Ok(StorageConfig::S3(S3Config {
        bucket: bucket.to_owned(),
        endpoint: s3.endpoint.clone(),
        public_endpoint: s3.public_endpoint.clone(),
        region,
        access_key_id,
        secret_access_key: Secret(secret_access_key),
        session_token,
        allow_http: s3.allow_http,
        virtual_hosted_style: s3.virtual_hosted_style,
    }))
}

/// An endpoint is a bare `http(s)://host[:port]` URL: a path, query or
/// credentials in it would be signed into every request and break them.
fn check_endpoint(name: &str, value: &str, allow_http: bool) -> Result<(), String> {
    let url = url::Url::parse(value)
        .map_err(|e| format!("{name} {value:?} is not a URL ({e}); write http(s)://host:port"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(format!(
                "{name} {value:?} is plain HTTP; set storage.s3.allow_http = true to allow it"
            ));
        }
        other => return Err(format!("{name} {value:?} has scheme {other:?}; use https")),
    }
    if url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !matches!(url.path(), "" | "/")
    {
        return Err(format!(
            "{name} {value:?} must be only http(s)://host[:port], with no path, query or user"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s3: &str, env: &[(&str, &str)]) -> Result<StorageConfig, String> {
        let raw: RawStorage = toml::from_str(&format!("url = \"s3://media\"\n[s3]\n{s3}")).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_storage(&raw, &|p| p.to_owned(), &|name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn credentials_come_from_the_config_or_the_aws_variables() {
        let Ok(StorageConfig::S3(c)) = parse(
            "access_key_id = \"K\"\nsecret_access_key = \"S\"",
            &[("AWS_ACCESS_KEY_ID", "envK"), ("AWS_SESSION_TOKEN", "T")],
        ) else {
            panic!("parses")
        };
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.0.as_str()),
            ("K", "S")
        );
        assert_eq!(
            c.session_token, None,
            "a token only with the variables' keys"
        );
        let Ok(StorageConfig::S3(c)) = parse(
            "region = \"eu-west-1\"",
            &[
                ("AWS_ACCESS_KEY_ID", "envK"),
                ("AWS_SECRET_ACCESS_KEY", "envS"),
                ("AWS_SESSION_TOKEN", "T"),
            ],
        ) else {
            panic!("parses")
        };
        assert_eq!(c.access_key_id, "envK");
        assert_eq!(c.session_token, Some(Secret("T".into())));
        assert_eq!(c.region, "eu-west-1");
        let e = parse("", &[("AWS_ACCESS_KEY_ID", "envK")]).unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }

    #[test]
    fn endpoints_must_be_bare_urls() {
        let keys = "access_key_id = \"K\"\nsecret_access_key = \"S\"\n";
        let ok = parse(&format!("{keys}endpoint = \"https://minio.lan:9000\""), &[]);
        assert!(ok.is_ok(), "{ok:?}");
        for (endpoint, says) in [
            ("minio.lan", "http(s)://"),
            ("ftp://minio.lan", "scheme"),
            ("http://minio.lan:9000", "allow_http"),
            ("https://minio.lan/media", "no path"),
            ("https://user:pw@minio.lan", "no path"),
        ] {
            let e = parse(&format!("{keys}endpoint = \"{endpoint}\""), &[]).unwrap_err();
            assert!(e.contains(says), "{endpoint}: {e}");
        }
    }
}
