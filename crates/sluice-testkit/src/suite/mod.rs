//! The conformance cases, one public async function per rule, grouped by port.
//!
//! Each case takes a [`Factory`](crate::Factory) and panics on a violation. Keep them independent
//! (fresh queues, fresh tenants) so they can run in any order and in parallel.

mod feed;
mod idempotency;
mod keys;
mod plans;
mod queue;
mod sources;
mod store;

pub use feed::*;
pub use idempotency::*;
pub use keys::*;
pub use plans::*;
pub use queue::*;
pub use sources::*;
pub use store::*;
