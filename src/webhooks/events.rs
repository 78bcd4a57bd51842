//! Which of Mux's events a change to an asset makes: a pure comparison of the
//! asset as the API showed it before a transaction with how it shows it
//! after. Table-tested below.

use serde_json::{Value, json};

/// One event to send: its type, the object it is about, and its `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `video.asset.ready`, …
    pub kind: &'static str,
    /// `asset` or `static_rendition`.
    pub object_type: &'static str,
    /// The object's id.
    pub object_id: String,
    /// The asset, or one rendition file plus `asset_id`.
    pub data: Value,
}

fn status(asset: Option<&Value>) -> Option<&str> {
    asset.and_then(|a| a["status"].as_str())
}

fn master_status(asset: Option<&Value>) -> Option<&str> {
    asset
        .and_then(|a| a.get("master"))
        .and_then(|m| m["status"].as_str())
}

fn legacy(asset: &Value) -> bool {
    asset
        .get("mp4_support")
        .is_some_and(|m| m.is_string() && m != "none")
}

fn renditions_status(asset: Option<&Value>) -> Option<&str> {
    asset
        .and_then(|a| a.get("static_renditions"))
        .and_then(|r| r["status"].as_str())
}

/// Rendition files that exist as rows (requested ones not yet planned have
/// no id), by name.
fn files(asset: Option<&Value>) -> Vec<&Value> {
    asset
        .and_then(|a| a.get("static_renditions"))
        .and_then(|r| r["files"].as_array())
        .map(|f| {
            f.iter()
                .filter(|f| f["id"].as_str().is_some_and(|id| !id.is_empty()))
                .collect()
        })
        .unwrap_or_default()
}

/// The events that take an asset from `before` to `after`, in the order a
/// receiver should see them.
pub fn derive(before: Option<&Value>, after: Option<&Value>) -> Vec<Event> {
    let mut out = Vec::new();
    let Some(now) = after.or(before) else {
        return out;
    };
    let asset_id = now["id"].as_str().unwrap_or_default().to_owned();
    let asset_event = |kind: &'static str, data: &Value| Event {
        kind,
        object_type: "asset",
        object_id: asset_id.clone(),
        data: data.clone(),
    };
    let file_event = |kind: &'static str, file: &Value| {
        let mut data = file.clone();
        data["asset_id"] = json!(asset_id);
        Event {
            kind,
            object_type: "static_rendition",
            object_id: file["id"].as_str().unwrap_or_default().to_owned(),
            data,
        }
    };
    let is_legacy = legacy(now);

    let Some(after) = after else {
        // Deleted: what it had goes first, the asset last.
        let before = before.expect("one side exists");
        if before.get("master").is_some() {
            out.push(asset_event("video.asset.master.deleted", before));
        }
        if is_legacy {
            if before.get("static_renditions").is_some() {
                out.push(asset_event("video.asset.static_renditions.deleted", before));
            }
        } else {
            for f in files(Some(before)) {
                out.push(file_event("video.asset.static_rendition.deleted", f));
            }
        }
        out.push(asset_event("video.asset.deleted", before));
        return out;
    };

    if before.is_none() {
        out.push(asset_event("video.asset.created", after));
    } else if let Some(b) = before
        && (b["passthrough"] != after["passthrough"] || b["meta"] != after["meta"])
    {
        out.push(asset_event("video.asset.updated", after));
    }

    // The master, while it is being made.
    let (mb, ma) = (master_status(before), master_status(Some(after)));
    if ma == Some("preparing") && mb != Some("preparing") {
        out.push(asset_event("video.asset.master.preparing", after));
    }
    // Rendition files appearing.
    let before_files = files(before);
    let after_files = files(Some(after));
    let old = |name: &Value| before_files.iter().find(|f| f["name"] == *name).copied();
    if !is_legacy {
        for f in &after_files {
            if old(&f["name"]).is_none() {
                out.push(file_event("video.asset.static_rendition.created", f));
            }
        }
    } else if renditions_status(Some(after)) == Some("preparing")
        && renditions_status(before) != Some("preparing")
    {
        out.push(asset_event(
            "video.asset.static_renditions.preparing",
            after,
        ));
    }

    // The asset's outcome.
    let (sb, sa) = (status(before), status(Some(after)));
    if sa != sb {
        match sa {
            Some("ready") => {
                out.push(asset_event("video.asset.ready", after));
                if after.get("non_standard_input_reasons").is_some() {
                    out.push(asset_event(
                        "video.asset.non_standard_input_detected",
                        after,
                    ));
                }
            }
            Some("errored") => out.push(asset_event("video.asset.errored", after)),
            _ => {}
        }
    }
    match (mb, ma) {
        (b, Some("ready")) if b != Some("ready") => {
            out.push(asset_event("video.asset.master.ready", after))
        }
        (b, Some("errored")) if b != Some("errored") => {
            out.push(asset_event("video.asset.master.errored", after))
        }
        (Some(_), None) => out.push(asset_event("video.asset.master.deleted", after)),
        _ => {}
    }

    // Rendition files' outcomes, and files removed.
    if is_legacy {
        let (rb, ra) = (renditions_status(before), renditions_status(Some(after)));
        match (rb, ra) {
            (b, Some("ready")) if b != Some("ready") => {
                out.push(asset_event("video.asset.static_renditions.ready", after))
            }
            (b, Some("errored")) if b != Some("errored") => {
                out.push(asset_event("video.asset.static_renditions.errored", after))
            }
            (Some(_), None) => {
                out.push(asset_event("video.asset.static_renditions.deleted", after))
            }
            _ => {}
        }
    } else {
        for f in &after_files {
            let was = old(&f["name"]).map(|o| &o["status"]);
            if was == Some(&f["status"]) {
                continue;
            }
            let kind = match f["status"].as_str() {
                Some("ready") => "video.asset.static_rendition.ready",
                Some("skipped") => "video.asset.static_rendition.skipped",
                Some("errored") => "video.asset.static_rendition.errored",
                _ => continue,
            };
            out.push(file_event(kind, f));
        }
        for f in &before_files {
            if !after_files.iter().any(|a| a["name"] == f["name"]) {
                out.push(file_event("video.asset.static_rendition.deleted", f));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(before: Option<Value>, after: Option<Value>) -> Vec<&'static str> {
        derive(before.as_ref(), after.as_ref())
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    fn file(name: &str, status: &str) -> Value {
        json!({"id": format!("id-{name}"), "name": name, "status": status})
    }

    #[test]
    fn a_whole_ingest() {
        let created = json!({"id": "a", "status": "preparing", "master": {"status": "preparing"},
            "static_renditions": {"status": "preparing", "files": [{"id": "", "name": "720p.mp4", "status": "preparing"}]}});
        assert_eq!(
            kinds(None, Some(created.clone())),
            ["video.asset.created", "video.asset.master.preparing"]
        );
        let planned = json!({"id": "a", "status": "preparing", "master": {"status": "preparing"},
            "static_renditions": {"status": "preparing", "files": [file("720p.mp4", "preparing"), file("1080p.mp4", "skipped")]}});
        assert_eq!(
            kinds(Some(created), Some(planned.clone())),
            [
                "video.asset.static_rendition.created",
                "video.asset.static_rendition.created",
                "video.asset.static_rendition.skipped"
            ]
        );
        let ready = json!({"id": "a", "status": "ready", "master": {"status": "ready", "url": "u"},
            "static_renditions": {"status": "ready", "files": [file("720p.mp4", "ready"), file("1080p.mp4", "skipped")]}});
        assert_eq!(
            kinds(Some(planned), Some(ready.clone())),
            [
                "video.asset.ready",
                "video.asset.master.ready",
                "video.asset.static_rendition.ready"
            ]
        );
        assert_eq!(
            kinds(Some(ready), None),
            [
                "video.asset.master.deleted",
                "video.asset.static_rendition.deleted",
                "video.asset.static_rendition.deleted",
                "video.asset.deleted"
            ]
        );
    }

    #[test]
    fn api_changes() {
        let ready = json!({"id": "a", "status": "ready", "passthrough": "p"});
        let patched = json!({"id": "a", "status": "ready", "passthrough": "q"});
        assert_eq!(
            kinds(Some(ready.clone()), Some(patched)),
            ["video.asset.updated"]
        );
        let on = json!({"id": "a", "status": "ready", "passthrough": "p", "master": {"status": "ready"}});
        assert_eq!(
            kinds(Some(ready.clone()), Some(on.clone())),
            ["video.asset.master.ready"]
        );
        assert_eq!(kinds(Some(on), Some(ready)), ["video.asset.master.deleted"]);
        let errored = json!({"id": "a", "status": "errored"});
        assert_eq!(
            kinds(
                Some(json!({"id": "a", "status": "preparing"})),
                Some(errored)
            ),
            ["video.asset.errored"]
        );
        let nothing = json!({"id": "a", "status": "preparing", "progress": {"progress": 5}});
        assert!(kinds(Some(nothing.clone()), Some(nothing)).is_empty());
    }

    #[test]
    fn legacy_mp4_support_uses_the_plural_events() {
        let a = |s: &str| {
            json!({"id": "a", "status": "ready", "mp4_support": "capped-1080p",
            "static_renditions": {"status": s, "files": [file("capped-1080p.mp4", s)]}})
        };
        assert_eq!(
            kinds(
                Some(json!({"id": "a", "status": "preparing", "mp4_support": "capped-1080p"})),
                Some(a("preparing"))
            ),
            [
                "video.asset.static_renditions.preparing",
                "video.asset.ready"
            ]
        );
        assert_eq!(
            kinds(Some(a("preparing")), Some(a("ready"))),
            ["video.asset.static_renditions.ready"]
        );
    }
}
