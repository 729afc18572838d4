//! An account's sync state in its state file ([`crate::state`]): what the
//! cache knows (unfinished tasks with their ids, the keys of the tasks
//! already counted finished), the covered windows and the paging place, the
//! counting baseline and the per-stream success times. Counters and
//! histograms are not saved: they restart from 0, as Prometheus expects of
//! a restarted process.

use super::cache::{CacheState, TaskCache};
use super::coverage::Coverage;
use super::{Account, SyncState};
use crate::config::AccountConfig;
use crate::state::{self, StateStore, Unusable};
use serde::{Deserialize, Serialize};

/// The body of a state file.
#[derive(Debug, Serialize, Deserialize)]
struct AccountState {
    account: String,
    vendor: String,
    /// Unix time written (informational).
    saved_at: i64,
    counting_since: Option<i64>,
    stream_success: Vec<Option<i64>>,
    coverage: Vec<Coverage>,
    cache: CacheState,
}

/// What the saved state depends on, without secrets: vendor, endpoint, key
/// id, domain filter, watched task types and stream count. Another value
/// means the file describes other data and is dropped.
pub(super) fn fingerprint(setup: &AccountConfig, streams: usize) -> String {
    let types: Vec<&str> = setup.task_types.iter().map(|t| t.as_str()).collect();
    state::fingerprint(&[
        setup.kind.as_str(),
        &setup.context.endpoint,
        &setup.context.credentials.id,
        setup.context.domain.as_deref().unwrap_or(""),
        &types.join(","),
        &streams.to_string(),
    ])
}

/// Fills `st` from the saved state of `name`, if there is a usable one;
/// otherwise one warning naming the file and the problem (nothing when
/// there is no file: a first start). True when restored.
pub(super) fn restore(
    store: &StateStore,
    name: &str,
    fingerprint: &str,
    st: &mut SyncState,
    max_tasks: usize,
) -> bool {
    let file = store.state_path(name);
    let saved = store.load(name, fingerprint).and_then(|body| {
        body.map(|b| serde_json::from_slice::<AccountState>(&b))
            .transpose()
            .map_err(|e| Unusable::Body(e.to_string()))
    });
    let saved = match saved {
        Ok(Some(s)) if s.coverage.len() != st.streams.len() => Err(Unusable::OtherConfig),
        Ok(Some(s)) if s.stream_success.len() != st.streams.len() => Err(Unusable::OtherConfig),
        other => other,
    };
    match saved {
        Ok(None) => false,
        Ok(Some(s)) => {
            st.cache = TaskCache::restore(s.cache, max_tasks);
            st.coverage = s.coverage;
            st.counting_since = s.counting_since;
            st.stream_success = s.stream_success;
            tracing::info!(
                account = %name,
                file = %file.display(),
                tasks = st.cache.len(),
                unfinished = st.cache.unfinished().count(),
                saved_at = s.saved_at,
                "state restored"
            );
            true
        }
        Err(why) => {
            tracing::warn!(account = %name, file = %file.display(), problem = %why, "state file unusable; the account starts fresh");
            false
        }
    }
}

impl Account {
    /// Writes this account's state file (waits for a refresh in flight to
    /// end, so the file is never a refresh's half-way point) and compacts
    /// its budget journal. Without a state directory, does nothing.
    pub async fn save_state(&self) -> std::io::Result<()> {
        let Some((store, fingerprint)) = &self.store else {
            return Ok(());
        };
        let saved = {
            let st = self.state.lock().await;
            AccountState {
                account: self.name.clone(),
                vendor: self.kind.as_str().to_owned(),
                saved_at: self.clock.unix(),
                counting_since: st.counting_since,
                stream_success: st.stream_success.clone(),
                coverage: st.coverage.clone(),
                cache: st.cache.export(),
            }
        };
        // Encoding and writing (hundreds of ms at a million tasks) happen
        // off the runtime's threads and outside the lock.
        let (store, fp, name) = (store.clone(), fingerprint.clone(), self.name.clone());
        tokio::task::spawn_blocking(move || {
            let body = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
            store.save(&name, &fp, &body)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.budget.compact_journal();
        Ok(())
    }
}
