//! The reconcile runtime: controllers in the kube-rs style.
//!
//! - [`queue`]: the work queue (deduplication, one worker per key at a
//!   time, exponential backoff), without I/O;
//! - [`controller`]: watch-driven controllers with periodic resync;
//! - `leader` (feature `etcd`): lease-based leader election for replicas
//!   sharing an etcd store.

pub mod controller;
#[cfg(feature = "etcd")]
pub mod leader;
pub mod queue;

pub use controller::{Action, Controller, Stats};
pub use queue::{Backoff, WorkQueue};
