//! The Kafka intake: where a message enters, and what happens to it until its offset may be committed.
//!
//! - [`pipeline`]: the consume loop, many messages in flight, and the graceful stop.
//! - [`context`]: the consumer's view of its partitions through rebalances.
//! - [`handler`]: one message: parsed, a result in every sink (or a dead letter), its offset finished.
//! - [`offsets`]: which offsets may be committed while many messages are in flight.
//! - [`window`] and [`window_size`]: the in-flight window, held messages while it is full, and its
//!   size, smaller while the process runs late.
//! - [`dead_letter`]: where messages that cannot be parsed (or whose work panicked) go.
//! - [`backlog`]: the lag of this process's partitions, reported for the edge's backpressure.
//! - [`clients`]: the Kafka clients' settings, each client only its own.

pub mod backlog;
pub mod clients;
pub mod context;
pub mod dead_letter;
pub mod handler;
pub mod offsets;
pub mod pipeline;
pub mod window;
pub mod window_size;
