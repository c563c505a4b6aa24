//! The process's own plumbing, used by every stage and using none of them.
//!
//! - [`settings`]: the settings (flags with environment twins).
//! - [`metrics`]: the Prometheus metrics; [`health`]: the server of `/metrics`, `/healthz` and `/readyz`.
//! - [`telemetry`]: logs, and OpenTelemetry spans that continue the edge's trace to the vendors.
//! - [`redact`]: secrets kept out of logs, error texts and stored failure details.
//! - [`lateness`]: how late this process's own runtime is, so that its lateness is not blamed on a vendor.
//! - [`clock`]: the wall clock, in the shared core's milliseconds.
//! - [`retry`]: retrying until done or stopped, with capped, jittered exponential backoff.

pub mod clock;
pub mod health;
pub mod lateness;
pub mod metrics;
pub mod redact;
pub mod retry;
pub mod settings;
pub mod telemetry;
