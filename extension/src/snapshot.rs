//! What the local API serves: the flags snapshot, its JSON body rendered once per change, its
//! ETag and its last error. Readers never block; the refresher swaps a new one in atomically.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use flags::Snapshot;
use flags::snapshot::assemble::Shadowed;
use flags::wire::{SnapshotDoc, Status};
use tokio::sync::watch;

/// One snapshot as served: parsed for evaluation, rendered for `GET /v1/flags`.
#[derive(Debug)]
pub struct Served {
    /// The parsed flags, with their status and fetch time.
    pub snapshot: Arc<Snapshot>,
    /// The `GET /v1/flags` body.
    pub body: Bytes,
    /// The content's ETag (quoted): it changes with the flags or the status, never with the
    /// fetch time alone.
    pub etag: String,
    /// Why the last refresh failed, while degraded or stale.
    pub last_error: Option<String>,
    /// Flags whose value is invalid.
    pub invalid: usize,
    /// SecureString flags SSM would not decrypt at the last fetch (sorted flag names): served
    /// from their last good value, or as their default if never decrypted.
    pub undecryptable: Vec<String>,
    /// Definitions hidden by another of the same name (see [`flags::snapshot::assemble`]).
    pub shadowed: Vec<Shadowed>,
}

impl Served {
    /// Renders `snapshot`. `instance` makes ETags unique to this process, so a handler never
    /// mistakes a restarted extension's snapshot for the one it holds.
    pub fn new(instance: u64, snapshot: Snapshot, last_error: Option<String>) -> Self {
        let body = Bytes::from(SnapshotDoc::from_snapshot(&snapshot).to_bytes());
        let invalid = snapshot
            .entries()
            .filter(|entry| entry.value().is_err())
            .count();
        Self {
            etag: format!(
                "\"{instance:x}-{}-{}\"",
                snapshot.version(),
                snapshot.status()
            ),
            snapshot: Arc::new(snapshot),
            body,
            last_error,
            invalid,
            undecryptable: Vec::new(),
            shadowed: Vec::new(),
        }
    }

    /// The same, naming the SecureString flags SSM would not decrypt.
    pub fn with_undecryptable(mut self, flags: Vec<String>) -> Self {
        self.undecryptable = flags;
        self
    }

    /// The same, with the definitions its flags hid.
    pub fn with_shadowed(mut self, shadowed: Vec<Shadowed>) -> Self {
        self.shadowed = shadowed;
        self
    }

    /// How current the flags are.
    pub fn status(&self) -> Status {
        self.snapshot.status()
    }

    /// The same flags with `status` and `last_error`. Nothing is parsed again, and the body is
    /// rendered again only when the status changes.
    pub fn remark(&self, instance: u64, status: Status, last_error: Option<String>) -> Self {
        if status != self.status() {
            return Self::new(instance, self.snapshot.with_status(status), last_error)
                .with_undecryptable(self.undecryptable.clone())
                .with_shadowed(self.shadowed.clone());
        }
        Self {
            snapshot: Arc::clone(&self.snapshot),
            body: self.body.clone(),
            etag: self.etag.clone(),
            last_error,
            invalid: self.invalid,
            undecryptable: self.undecryptable.clone(),
            shadowed: self.shadowed.clone(),
        }
    }
}

/// The served snapshot, shared between the refresher (writer) and the server (readers), with a
/// signal for the requests that wait for a change (long polls).
#[derive(Debug, Clone)]
pub struct Shared(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    served: ArcSwap<Served>,
    /// Bumped at every publish; `true` once closing (SHUTDOWN, SIGTERM): waiters answer at once.
    changes: watch::Sender<bool>,
}

/// A subscription to changes of the served snapshot (see [`Shared::subscribe`]).
#[derive(Debug)]
pub struct Changes(watch::Receiver<bool>);

impl Changes {
    /// Completes at the first publish (or close) after the subscription was taken; a change
    /// between subscribing and waiting is not missed.
    pub async fn changed(&mut self) {
        if *self.0.borrow() {
            return;
        }
        // An error means the sender is gone: nothing will change any more.
        let _ = self.0.changed().await;
    }

    /// Whether the API is closing.
    pub fn closing(&self) -> bool {
        *self.0.borrow()
    }
}

impl Shared {
    /// Shares `served`.
    pub fn new(served: Served) -> Self {
        Self(Arc::new(Inner {
            served: ArcSwap::from_pointee(served),
            changes: watch::Sender::new(false),
        }))
    }

    /// The snapshot served now.
    pub fn load(&self) -> Arc<Served> {
        self.0.served.load_full()
    }

    /// Serves `served` from now on, and wakes the requests waiting for a change.
    pub fn publish(&self, served: Served) {
        self.0.served.store(Arc::new(served));
        self.0.changes.send_modify(|_| {});
    }

    /// A subscription to the next changes. Take it before looking at the snapshot.
    pub fn subscribe(&self) -> Changes {
        Changes(self.0.changes.subscribe())
    }

    /// Releases every waiting request at once, and every later one without waiting.
    pub fn close(&self) {
        self.0.changes.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::{FlagEntry, Parameter, ParameterKind};
    use std::time::SystemTime;

    fn snapshot(status: Status) -> Snapshot {
        let params = [
            ("dark-mode", "true", ParameterKind::String),
            ("broken", "{", ParameterKind::String),
            (
                "partner",
                r#"{"enabled": true}"#,
                ParameterKind::SecureString,
            ),
        ];
        Snapshot::new(
            5,
            status,
            params.map(|(flag, value, kind)| {
                FlagEntry::from_parameter(&Parameter {
                    flag: flag.to_owned(),
                    name: format!("/app/features/{flag}"),
                    kind,
                    value: value.to_owned(),
                    version: 2,
                })
            }),
        )
        .with_fetched_at(Some(SystemTime::now()))
    }

    #[test]
    fn render_serves_every_flag_and_counts_invalid_ones() {
        let served = Served::new(0xab, snapshot(Status::Ok), None);
        assert_eq!(served.invalid, 1);
        assert_eq!(served.etag, "\"ab-5-ok\"");
        let doc: serde_json::Value = serde_json::from_slice(&served.body).expect("JSON body");
        assert_eq!(doc["version"], 5);
        assert_eq!(doc["status"], "ok");
        assert_eq!(doc["stale"], false);
        assert_eq!(
            doc["flags"]["dark-mode"],
            serde_json::json!({"value": true, "version": 2})
        );
        assert_eq!(doc["flags"]["partner"]["secure"], true);
        assert_eq!(doc["flags"]["broken"]["value"], "{");
        assert!(
            doc["flags"]["broken"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("parameter /app/features/broken: invalid JSON"))
        );
        assert!(served.snapshot.get("dark-mode").enabled());
    }

    #[test]
    fn the_etag_follows_content_and_status_not_fetch_time() {
        let ok = Served::new(0xab, snapshot(Status::Ok), None);
        let later = Served::new(
            0xab,
            snapshot(Status::Ok)
                .with_fetched_at(Some(SystemTime::now() + std::time::Duration::from_secs(60))),
            None,
        );
        assert_eq!(ok.etag, later.etag, "a later fetch of the same content");
        let stale = ok.remark(0xab, Status::Stale, Some("down".into()));
        assert_ne!(stale.etag, ok.etag, "the status is part of the content");
        let doc: serde_json::Value = serde_json::from_slice(&stale.body).expect("JSON body");
        assert_eq!(
            (doc["status"].as_str(), doc["stale"].as_bool()),
            (Some("stale"), Some(true))
        );
        assert_eq!(stale.snapshot.version(), 5);
        assert_eq!(stale.invalid, 1);
        let again = stale.remark(0xab, Status::Stale, Some("still down".into()));
        assert!(
            Arc::ptr_eq(&again.snapshot, &stale.snapshot),
            "no copy for the same status"
        );
        assert_eq!(again.etag, stale.etag);
        assert_eq!(again.last_error.as_deref(), Some("still down"));
    }

    #[tokio::test]
    async fn a_subscriber_sees_a_publish_made_after_it_subscribed_and_a_close() {
        let shared = Shared::new(Served::new(1, snapshot(Status::Ok), None));
        let mut changes = shared.subscribe();
        // Published before the wait began, after the subscription: not missed.
        shared.publish(Served::new(1, snapshot(Status::Stale), None));
        tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
            .await
            .expect("woken by the publish");
        assert!(!changes.closing());
        let mut later = shared.subscribe();
        let waiting = tokio::spawn(async move {
            later.changed().await;
            later.closing()
        });
        shared.close();
        let closing = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("released by close")
            .expect("task");
        assert!(closing);
        // After close, a new subscriber does not wait at all.
        let mut after = shared.subscribe();
        tokio::time::timeout(std::time::Duration::from_secs(5), after.changed())
            .await
            .expect("no wait once closing");
    }
}
