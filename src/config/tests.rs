//! The config's load, overlay and validation rules.

use super::*;

#[test]
fn embedded_default_is_valid_and_relative_to_base() {
    let c = Config::embedded(Path::new("/srv/reeld")).unwrap();
    assert_eq!(c.watch_dir, Path::new("/srv/reeld/data/watch"));
    assert_eq!(c.database_path, Path::new("/srv/reeld/data/reeld.db"));
    match c.storage {
        StorageConfig::Local { root } => assert_eq!(root, Path::new("/srv/reeld/data/store")),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.default_max_resolution_tier, MaxResolutionTier::P1080);
}

#[test]
fn every_problem_is_listed_at_once() {
    let text = EMBEDDED_DEFAULT
        .replace("concurrency = 1", "concurrency = 0")
        .replace("settle_seconds = 3", "settle_seconds = -1")
        .replace("url = \"file://data/store\"", "url = \"ftp://x\"")
        .replace("rescan_seconds = 600", "rescan_seconds = 0.5");
    let err = Config::from_toml(&text, Path::new("/x"), "test").unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("ingest.rescan_seconds")));
}

#[test]
fn unknown_keys_bad_values_and_missing_paths_are_listed_together() {
    let text = "[ingest]\nsetle_seconds = 2\nfailed_dir = \"\"\n\
                [transcode]\nconcurrency = 0\n";
    let err = Config::from_toml(text, Path::new("/x"), "t").unwrap_err();
    let ConfigError::Invalid { problems, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("unknown key ingest.setle_seconds"));
    assert!(problems[1].contains("ingest.failed_dir is empty"));
    assert!(problems[2].contains("transcode.concurrency must be at least 1"));
}

#[test]
fn unknown_keys_and_bad_enums_are_named() {
    let text = EMBEDDED_DEFAULT.replace("[log]", "[log]\nlevl = 1");
    let err = Config::from_toml(&text, Path::new("/x"), "t").unwrap_err();
    assert!(err.to_string().contains("levl"), "{err}");
    let text = EMBEDDED_DEFAULT.replace(
        "max_resolution_tier = \"1080p\"",
        "max_resolution_tier = \"4k\"",
    );
    let err = Config::from_toml(&text, Path::new("/x"), "t").unwrap_err();
    assert!(err.to_string().contains("4k"), "{err}");
}

#[test]
fn profiles_apply_to_their_sub_folder_and_are_checked() {
    let text = format!(
        "{EMBEDDED_DEFAULT}\n[profiles.web]\nmax_resolution_tier = \"2160p\"\nstatic_renditions = [{{ resolution = \"720p\" }}]\n"
    );
    let c = Config::from_toml(&text, Path::new("/x"), "t").unwrap();
    let s = c.settings_for(Path::new("web/clip.mp4"));
    assert_eq!(s.max_resolution_tier, MaxResolutionTier::P2160);
    assert_eq!(s.static_renditions.len(), 1);
    // A file named like the profile, not inside it, gets the defaults.
    assert_eq!(
        c.settings_for(Path::new("web")).max_resolution_tier,
        MaxResolutionTier::P1080
    );
    assert_eq!(
        c.settings_for(Path::new("other/clip.mp4"))
            .static_renditions
            .len(),
        0
    );

    let bad = format!(
        "{EMBEDDED_DEFAULT}\n[profiles.web]\nstatic_renditions = [{{ resolution = \"4k\" }}]\n"
    );
    let err = Config::from_toml(&bad, Path::new("/x"), "t").unwrap_err();
    assert!(
        err.to_string().contains("profiles.web") && err.to_string().contains("4k"),
        "{err}"
    );
}

#[test]
fn a_config_names_only_what_it_changes() {
    let minimal = r#"
[ingest]
watch_dir = "/srv/in"
settle_seconds = 2
on_success = "delete"
failed_dir = "/srv/failed"
[storage]
url = "file:///srv/store"
[database]
path = "/srv/reeld.db"
"#;
    let c = Config::from_toml(minimal, Path::new("/etc/reeld"), "t").unwrap();
    assert_eq!(c.watch_dir, Path::new("/srv/in"));
    assert_eq!(c.on_success, OnSuccess::Delete);
    assert_eq!(c.database_path, Path::new("/srv/reeld.db"));
    // Everything else is the embedded default.
    assert_eq!(c.concurrency, 1);
    assert_eq!(c.default_video_quality, VideoQuality::Plus);
    assert_eq!(c.spool_dir, Path::new("/etc/reeld/data/spool"));
    let bad = "[transcode]\nconcurrency = 0\nmax_attempts = 0\n[ingest]\nmax_queued_files = 0\n";
    let ConfigError::Invalid { problems, .. } =
        Config::from_toml(bad, Path::new("/x"), "t").unwrap_err()
    else {
        panic!("not a validation error")
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn secrets_are_redacted() {
    let s = Secret("hunter2".into());
    assert_eq!(format!("{s:?}"), "<redacted>");
}

#[test]
fn stream_base_url_is_read_under_api_or_playback_but_not_both() {
    let under_api = "[api]\nstream_base_url = \"https://stream.example.com/\"\n";
    let c = Config::from_toml(under_api, Path::new("/x"), "t").unwrap();
    assert_eq!(
        c.playback.stream_base_url.as_deref(),
        Some("https://stream.example.com")
    );
    let both = "[api]\nstream_base_url = \"https://a.example\"\n\
                [playback]\nstream_base_url = \"https://b.example\"\n";
    let err = Config::from_toml(both, Path::new("/x"), "t").unwrap_err();
    assert!(err.to_string().contains("same setting"), "{err}");
}
