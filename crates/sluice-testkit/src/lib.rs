//! One conformance suite for Sluice's ports, shared by every adapter.
//!
//! The ports promise SQS and DynamoDB semantics; this crate writes those promises down once, as
//! plain async functions in [`suite`] that take a [`Factory`], so the embedded SQLite adapters,
//! the AWS adapters (against moto) and the in-memory adapters of [`memory`] are held to the
//! identical rules. A backend opts in with one macro invocation in an integration test:
//!
//! ```ignore
//! sluice_testkit::conformance_tests!(embedded, EmbeddedFactory);
//! ```
//!
//! which expands to one `#[tokio::test]` per suite function (the calling crate needs `tokio` with
//! the `macros` and `rt-multi-thread` features as a dev-dependency).
//!
//! [`webhooks`] signs deliveries the way each webhook provider does.
//!
//! The [`memory`] module holds in-memory adapters for every port, for tests elsewhere that need
//! ports but no database; they run through the same suite (`tests/conformance.rs`).
//!
//! Timing-dependent cases use whole seconds for visibility timeouts and at most about two seconds
//! of waiting each, since SQS (and moto) count visibility in seconds.
//!
//! This is test code: a failed assertion panics, which is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod memory;
pub mod suite;
pub mod webhooks;

use async_trait::async_trait;
use sluice_core::ports::{
    EventStore, IdempotencyStore, KeyStore, MessageAttributes, OutgoingMessage, Queue, SourceStore, TenantPlans,
};
use sluice_core::{EventId, EventType, RequestId, StoredEvent, Tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

/// Makes fresh, isolated port objects for one test of one backend.
///
/// [`Factory::create`] runs once per test; every queue it hands out must be new and empty (unique
/// names), and the stores must not hold data of other tests (fresh tables, or a fresh file).
#[async_trait]
pub trait Factory: Send + Sync + Sized + 'static {
    /// A fresh backend for one test (a temp dir, fresh table names, a moto endpoint...).
    async fn create() -> Self;

    /// A new, empty queue without a dead-letter policy.
    async fn queue(&self) -> Arc<dyn Queue>;

    /// A new, empty queue (first) whose messages move to a new, empty dead-letter queue (second)
    /// once they have been received `max_receive_count` times.
    async fn queue_with_dlq(&self, max_receive_count: u32) -> (Arc<dyn Queue>, Arc<dyn Queue>);

    /// The event store.
    async fn event_store(&self) -> Arc<dyn EventStore>;

    /// The idempotency store.
    async fn idempotency_store(&self) -> Arc<dyn IdempotencyStore>;

    /// The key store.
    async fn key_store(&self) -> Arc<dyn KeyStore>;
}

/// A backend with a webhook source store too, held to [`source_conformance_tests!`]'s cases.
#[async_trait]
pub trait SourceFactory: Factory {
    /// The source store.
    async fn source_store(&self) -> Arc<dyn SourceStore>;
}

/// A backend with tenant plans too, held to [`plan_conformance_tests!`]'s cases.
#[async_trait]
pub trait PlansFactory: Factory {
    /// The tenant plans.
    async fn plans(&self) -> Arc<dyn TenantPlans>;
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other test (in this run or an earlier one against a shared backend) uses:
/// `prefix`, the process id, the time and a counter, all in `[a-z0-9-]`.
pub fn unique_name(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let t = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000_000;
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

/// A tenant of its own for one test, so backends with shared tables stay isolated.
pub fn fresh_tenant() -> Tenant {
    Tenant::parse(&unique_name("t")).expect("unique names are valid tenants")
}

/// A message with `body` and no attributes.
pub fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        attributes: MessageAttributes::new(),
        group: None,
    }
}

/// A message with `body` and the given attributes.
pub fn message_with(body: &str, attributes: &[(&str, &str)]) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        group: None,
    }
}

/// An event of `tenant` with type `event_type`, received at `at`, with a small payload.
pub fn event(tenant: &Tenant, event_type: &str, at: OffsetDateTime) -> StoredEvent {
    StoredEvent {
        trace_id: None,
        seq: 0,
        expires_at: None,
        idempotency_key: None,
        id: EventId::new_at(at),
        tenant: tenant.clone(),
        event_type: EventType::parse(event_type).expect("test event types are valid"),
        data: serde_json::json!({ "n": 1 }).into(),
        occurred_at: at,
        received_at: at,
        request_id: RequestId::generate(),
        subject: None,
        webhook: None,
        extensions: Default::default(),
    }
}

/// `e` without its feed position, to compare what a store returns with what was put.
pub fn unseq(mut e: StoredEvent) -> StoredEvent {
    e.seq = 0;
    e
}

/// Now, cut to whole seconds, so times survive backends that store seconds.
pub fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Expands to one `#[tokio::test]` per conformance case, in a module named `$module`, each
/// creating a fresh `$factory` (a type implementing [`Factory`], visible from the invoking module).
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $factory:ty) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!($factory;
                queue_round_trips_body_and_attributes,
                queue_send_batch_returns_one_id_per_message,
                queue_rejects_oversized_batches,
                queue_receives_in_send_order,
                queue_receive_returns_at_most_max,
                queue_long_poll_returns_empty_after_wait,
                queue_long_poll_wakes_when_a_message_arrives,
                queue_hides_received_messages_until_visibility_expires,
                queue_delete_removes_the_message_and_repeats_are_ok,
                queue_delete_batch_answers_per_receipt,
                queue_change_visibility_zero_makes_a_message_visible_now,
                queue_change_visibility_extends_hiding,
                queue_counts_receives,
                queue_depth_counts_visible_and_in_flight,
                queue_redrives_after_max_receive_count,
                queue_queues_are_isolated,
                queue_concurrent_sends_are_each_delivered,
                queue_keeps_each_message_group,
                store_put_if_absent_is_conditional,
                store_round_trips_the_optional_subject_webhook_and_extensions,
                store_put_batch_if_absent_answers_per_event,
                store_round_trips_every_field,
                store_get_is_scoped_to_tenant,
                store_same_id_in_two_tenants_is_two_events,
                store_lists_newest_first_in_pages,
                store_list_filters_by_type,
                store_list_is_scoped_to_tenant,
                store_concurrent_puts_store_each_event_once,
                feed_assigns_ascending_seqs_once_each,
                feed_deletion_leaves_a_tombstone,
                feed_filters_by_type,
                feed_keeps_the_checkpoint_guarantee_under_concurrent_writers,
                feed_refuses_an_after_older_than_retention,
                feed_delete_subject_takes_only_that_subjects_earlier_events,
                feed_erasure_records_and_markers,
                idempotency_forget_removes_the_record,
                idempotency_first_claim_wins,
                idempotency_expired_record_is_replaced,
                idempotency_complete_marks_the_record,
                idempotency_keys_are_per_tenant,
                keys_insert_get_and_list_oldest_first,
                keys_revoke_keeps_the_first_time,
                keys_set_expiry_sets_and_clears,
            );
        }
    };
}

/// Expands to one `#[tokio::test]` per source store case, in a module named `$module`, for a
/// `$factory` implementing [`SourceFactory`].
#[macro_export]
macro_rules! source_conformance_tests {
    ($module:ident, $factory:ty) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!($factory;
                sources_insert_get_and_list_oldest_first,
                sources_set_secrets_replaces_them,
                sources_delete_keeps_the_first_time,
            );
        }
    };
}

/// Expands to one `#[tokio::test]` per tenant plan case, in a module named `$module`, for a
/// `$factory` implementing [`PlansFactory`].
#[macro_export]
macro_rules! plan_conformance_tests {
    ($module:ident, $factory:ty) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases!($factory;
                plans_set_get_list_and_clear,
                plans_enroll_is_idempotent_and_keeps_an_own_plan,
                plans_refuse_limits_that_do_not_bound,
            );
        }
    };
}

/// Implementation detail of [`conformance_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($factory:ty; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = <$factory as $crate::Factory>::create().await;
                $crate::suite::$case(&factory).await;
            }
        )*
    };
}
