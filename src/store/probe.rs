//! A round trip through the store with a small object under a reserved
//! prefix (no asset key starts with it): write, read back, list, delete.
//! `reeld doctor` reports each step; the queue uses it to learn that a
//! misconfigured store answers again.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use super::{Store, StoreError};

/// The reserved prefix of probe objects.
pub const PROBE_PREFIX: &str = "reeld-probe";

/// One step of the round trip and how it went.
#[derive(Debug)]
pub struct Step {
    /// `write`, `read`, `list` or `delete`.
    pub name: &'static str,
    /// `None` when an earlier step failed and this one did not run.
    pub result: Option<Result<(), StoreError>>,
}

/// Runs the round trip with the object `reeld-probe/{tag}`; a failed step
/// skips the rest (the object is removed if it was written).
pub async fn round_trip(store: &Store, tag: &str) -> Vec<Step> {
    let objects = store.backend().objects.clone();
    let key = ObjectPath::from(format!("{PROBE_PREFIX}/{tag}"));
    let body = format!("reeld store probe {tag}\n");
    let op_err = StoreError::on(&key);
    let mismatch = |what: &str| StoreError::Operation {
        key: key.to_string(),
        source: object_store::Error::Generic {
            store: "probe",
            source: what.to_owned().into(),
        },
    };
    let mut steps = Vec::new();
    let write = objects
        .put(&key, PutPayload::from(body.clone().into_bytes()))
        .await
        .map(|_| ())
        .map_err(op_err);
    let written = write.is_ok();
    steps.push(Step {
        name: "write",
        result: Some(write),
    });
    let read = if written {
        Some(match objects.get(&key).await {
            Ok(got) => match got.bytes().await {
                Ok(bytes) if bytes.as_ref() == body.as_bytes() => Ok(()),
                Ok(_) => Err(mismatch(
                    "the object read back differs from what was written",
                )),
                Err(e) => Err(op_err(e)),
            },
            Err(e) => Err(op_err(e)),
        })
    } else {
        None
    };
    let read_ok = matches!(read, Some(Ok(())));
    steps.push(Step {
        name: "read",
        result: read,
    });
    let list = if read_ok {
        let prefix = ObjectPath::from(PROBE_PREFIX);
        Some(
            match objects
                .list(Some(&prefix))
                .map_ok(|meta| meta.location)
                .try_collect::<Vec<_>>()
                .await
            {
                Ok(keys) if keys.contains(&key) => Ok(()),
                Ok(_) => Err(mismatch("the written object is missing from the listing")),
                Err(e) => Err(op_err(e)),
            },
        )
    } else {
        None
    };
    steps.push(Step {
        name: "list",
        result: list,
    });
    // Removed whenever it was written, even after a failed step.
    let delete = written.then(|| {
        let objects = objects.clone();
        let key = key.clone();
        async move { objects.delete(&key).await }
    });
    let delete = match delete {
        Some(delete) => Some(delete.await.map_err(op_err)),
        None => None,
    };
    steps.push(Step {
        name: "delete",
        result: delete,
    });
    steps
}

/// The first failure of a round trip, if any.
pub fn first_failure(steps: Vec<Step>) -> Option<(&'static str, StoreError)> {
    steps.into_iter().find_map(|s| match s.result {
        Some(Err(e)) => Some((s.name, e)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    #[tokio::test]
    async fn a_local_round_trip_passes_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorageConfig::Local {
            root: dir.path().join("store"),
        })
        .unwrap();
        let steps = round_trip(&store, "t1").await;
        assert_eq!(steps.len(), 4);
        assert!(
            steps.iter().all(|s| matches!(s.result, Some(Ok(())))),
            "{steps:?}"
        );
        assert!(!dir.path().join("store/reeld-probe/t1").exists());
    }
}
