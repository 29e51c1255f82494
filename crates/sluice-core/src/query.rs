//! The query use case: one tenant's events by id or by page, never another tenant's (I-3).

use crate::cursor::{CursorCodec, CursorError};
use crate::event::{EventType, StoredEvent};
use crate::ids::EventId;
use crate::ports::{EventStore, ListQuery, StoreError};
use crate::tenant::Tenant;
use std::sync::Arc;

/// Default and maximum page sizes.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such event for this tenant (absent and foreign look the same).
    #[error("not found")]
    NotFound,
    /// A query parameter is invalid (400).
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The cursor is forged, altered or foreign (400).
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page as the API returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventPage {
    /// Newest first.
    pub events: Vec<StoredEvent>,
    /// Pass back as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// The query use case.
#[derive(Clone)]
pub struct QueryService {
    store: Arc<dyn EventStore>,
    cursors: CursorCodec,
}

impl std::fmt::Debug for QueryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryService").finish_non_exhaustive()
    }
}

impl QueryService {
    /// Wires the use case to its store.
    pub fn new(store: Arc<dyn EventStore>, cursors: CursorCodec) -> Self {
        Self { store, cursors }
    }

    /// One event of `tenant`'s.
    pub async fn get(&self, tenant: &Tenant, id: &str) -> Result<StoredEvent, QueryError> {
        let id = EventId::parse(id).map_err(|_| QueryError::NotFound)?;
        match self.store.get(tenant, &id).await? {
            Some(e) if &e.tenant == tenant => Ok(e),
            _ => Err(QueryError::NotFound),
        }
    }

    /// One page of `tenant`'s events, newest first.
    pub async fn list(
        &self,
        tenant: &Tenant,
        ty: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<EventPage, QueryError> {
        let event_type = ty
            .map(EventType::parse)
            .transpose()
            .map_err(|e| QueryError::InvalidParameter {
                name: "type",
                message: e.to_string(),
            })?;
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(QueryError::InvalidParameter {
                        name: "limit",
                        message: format!("an integer from 1 to {MAX_LIMIT}"),
                    });
                }
            },
        };
        let after = cursor
            .map(|c| self.cursors.decode(tenant, event_type.as_ref(), c))
            .transpose()?;
        let page = self
            .store
            .list(
                tenant,
                &ListQuery {
                    event_type: event_type.clone(),
                    limit,
                    after,
                },
            )
            .await?;
        // Defence in depth: an adapter bug must not leak another tenant's rows.
        let events: Vec<StoredEvent> = page.events.into_iter().filter(|e| &e.tenant == tenant).collect();
        let next_cursor = match page.last {
            Some(last) => Some(self.cursors.encode(tenant, event_type.as_ref(), &last)?),
            None => None,
        };
        Ok(EventPage { events, next_cursor })
    }
}
