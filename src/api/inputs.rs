//! `inputs[0].url` of `POST /video/v1/assets`: a `file://` path below the
//! allowed folders, or an `http(s)://` URL the address policy does not
//! refuse outright.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::ApiError;

/// Where an asset's input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file below `[api] allowed_input_dirs`, resolved.
    File(PathBuf),
    /// An `http(s)://` URL, fetched by the job.
    Url(String),
}

/// Checks `inputs[0].url`: a `file://` URL of a regular file below one of
/// the allowed folders (after resolving symlinks), or an `http(s)://` URL
/// whose host the `[api.url_inputs]` policy does not refuse outright (its
/// addresses are checked again when the job fetches it).
pub fn input(
    url: &str,
    allowed: &[PathBuf],
    policy: &crate::netpolicy::NetPolicy,
) -> Result<Input, ApiError> {
    let bad = |why: String| ApiError::InvalidParameters(format!("inputs[0].url: {why}"));
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("{url:?} is not a URL ({e})")))?;
    match parsed.scheme() {
        "file" => {}
        "http" | "https" => {
            if url.len() > 4096 {
                return Err(bad("the URL is longer than 4096 characters".into()));
            }
            crate::jobs::fetch::check_url(policy, &parsed).map_err(bad)?;
            return Ok(Input::Url(parsed.to_string()));
        }
        other => {
            return Err(bad(format!(
                "the {other}:// scheme is not supported; use http://, https:// or file://"
            )));
        }
    }
    if allowed.is_empty() {
        return Err(bad(
            "file:// inputs are turned off: [api] allowed_input_dirs is empty".into(),
        ));
    }
    let path = parsed
        .to_file_path()
        .map_err(|()| bad(format!("{url:?} is not a local file path")))?;
    let canonical = path
        .canonicalize()
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    // The folders are resolved again now: one may have been made (or
    // re-linked) since start-up.
    let inside = |dir: &PathBuf| dir.canonicalize().is_ok_and(|d| canonical.starts_with(&d));
    if !allowed.iter().any(inside) {
        return Err(bad(format!(
            "{} is not inside a folder of [api] allowed_input_dirs",
            path.display()
        )));
    }
    Ok(Input::File(canonical))
}

pub fn input_url(body: &Map<String, Value>) -> Result<String, ApiError> {
    let first_url = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(list) => list
                .first()
                .and_then(|i| i.get("url"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        }
    };
    body.get("inputs")
        .or_else(|| body.get("input"))
        .and_then(first_url)
        .ok_or_else(|| {
            ApiError::InvalidParameters(
                "inputs[0].url is required: an http(s):// or file:// URL of the source".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn inputs_must_be_files_inside_allowed_folders() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("in").canonicalize().unwrap_or_else(|_| {
            std::fs::create_dir_all(dir.path().join("in")).unwrap();
            dir.path().join("in").canonicalize().unwrap()
        });
        std::fs::write(allowed.join("a.mp4"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.mp4"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.mp4"), allowed.join("link.mp4"))
            .unwrap();
        let url = |p: &Path| format!("file://{}", p.display());
        let policy = crate::netpolicy::NetPolicy::default();
        let input_file = |u: &str, dirs: &[PathBuf]| input(u, dirs, &policy);
        let ok = input_file(&url(&allowed.join("a.mp4")), std::slice::from_ref(&allowed));
        assert_eq!(ok.unwrap(), Input::File(allowed.join("a.mp4")));
        assert_eq!(
            input_file("https://example.com/a.mp4", &[]).unwrap(),
            Input::Url("https://example.com/a.mp4".into())
        );
        for bad in [
            format!("file://{}/../secret.mp4", allowed.display()),
            url(&allowed.join("link.mp4")),
            url(&allowed.join("missing.mp4")),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://127.0.0.1:8080/a.mp4".to_owned(),
            "ftp://x/y".to_owned(),
        ] {
            let e = input_file(&bad, std::slice::from_ref(&allowed)).unwrap_err();
            assert!(matches!(e, ApiError::InvalidParameters(_)), "{bad}: {e:?}");
        }
        assert!(input_file(&url(&allowed.join("a.mp4")), &[]).is_err());
    }
}
