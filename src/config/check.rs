//! The key check of a config file, before it is deserialized: unknown keys,
//! values of the wrong type and unknown enum values are each reported, and
//! the offending key is set aside so that the rest can still be read and
//! validated. The user sees every problem of the file in one message, not
//! the first one serde stops at.
//!
//! The schema is the embedded default itself: a key it does not have is
//! unknown, unless it is one of the optional keys the default leaves out.

use crate::asset::{MaxResolutionTier, VideoQuality};

use super::OnSuccess;

/// Keys the embedded default leaves out on purpose.
const OPTIONAL: &[&str] = &[
    "api.public_base_url",
    "api.stream_base_url",
    "api.url_signing_key",
    "api.tokens",
    "webhooks.endpoints",
    "storage.s3",
    "profiles",
    "playback.stream_base_url",
    "playback.geoip_database",
    "cloudflare.account_id",
    "cloudflare.api_token",
];

/// Values whose insides serde checks (arrays of tables, free-form tables).
const NOT_WALKED: &[&str] = &["storage.s3", "profiles", "api.tokens", "webhooks.endpoints"];

/// Removes every unknown or mistyped key from `given` and says why, one
/// sentence per key.
pub fn set_aside_bad_keys(given: &mut toml::Table, defaults: &toml::Table) -> Vec<String> {
    let mut problems = Vec::new();
    walk("", given, defaults, &mut problems);
    problems
}

fn walk(prefix: &str, given: &mut toml::Table, defaults: &toml::Table, problems: &mut Vec<String>) {
    let siblings: Vec<String> = defaults.keys().cloned().collect();
    given.retain(|key, value| {
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        if NOT_WALKED.contains(&path.as_str()) {
            return true;
        }
        let Some(default) = defaults.get(key) else {
            if OPTIONAL.contains(&path.as_str()) {
                return true;
            }
            problems.push(match closest(key, &siblings) {
                Some(near) => format!("unknown key {path} (did you mean {near}?)"),
                None => format!("unknown key {path}"),
            });
            return false;
        };
        match (default, &mut *value) {
            (toml::Value::Table(d), toml::Value::Table(g)) => {
                walk(&path, g, d, problems);
                true
            }
            (d, g) if !same_kind(d, g) => {
                problems.push(format!("{path} must be {}, not {g}", kind(d)));
                false
            }
            (_, g) => match enum_problem(&path, g) {
                Some(p) => {
                    problems.push(format!("{path}: {p}"));
                    false
                }
                None => true,
            },
        }
    });
}

fn same_kind(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value::{Float, Integer};
    matches!((a, b), (Integer(_) | Float(_), Integer(_) | Float(_)))
        || std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) | toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// Checks the keys whose values are one of a set of words.
fn enum_problem(path: &str, value: &toml::Value) -> Option<String> {
    let result = match path {
        "ingest.on_success" => value.clone().try_into::<OnSuccess>().map(drop),
        "defaults.max_resolution_tier" => value.clone().try_into::<MaxResolutionTier>().map(drop),
        "defaults.video_quality" => value.clone().try_into::<VideoQuality>().map(drop),
        _ => Ok(()),
    };
    result.err().map(|e| e.to_string().trim().to_owned())
}

/// The sibling key nearest to a misspelt one (at most two edits away).
fn closest<'a>(key: &str, siblings: &'a [String]) -> Option<&'a str> {
    siblings
        .iter()
        .map(|s| (edit_distance(key, s), s))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, s)| s.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_key_is_named_and_set_aside() {
        let defaults: toml::Table = toml::from_str(super::super::EMBEDDED_DEFAULT).unwrap();
        let mut given: toml::Table = toml::from_str(
            "[ingest]\nsetle_seconds = 2\non_success = \"remove\"\n\
             [transcode]\nconcurrency = \"two\"\n[extra]\nx = 1\n\
             [api]\npublic_base_url = \"https://m.example\"\n[profiles.web]\nmax_resolution_tier = \"720p\"\n",
        )
        .unwrap();
        let problems = set_aside_bad_keys(&mut given, &defaults);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        let said = |p: &str| problems.iter().any(|x| x.starts_with(p));
        assert!(said(
            "unknown key ingest.setle_seconds (did you mean settle_seconds?)"
        ));
        assert!(said("ingest.on_success: unknown variant `remove`"));
        assert!(said("transcode.concurrency must be a number, not \"two\""));
        assert!(said("unknown key extra"));
        let text = toml::to_string(&given).unwrap();
        assert!(text.contains("public_base_url") && text.contains("[profiles.web]"));
        assert!(!text.contains("setle") && !text.contains("two") && !text.contains("extra"));
    }
}
