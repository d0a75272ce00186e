//! State the replicas of one bridge share (issue 19): the connection to Redis and the ack-time
//! gate (replays and retries). Embedded, each piece lives in this process instead. This layer
//! sits beside `store`: it uses only configuration and the Slack signature types.

pub mod blocking;
pub mod gate;
pub mod lease;
pub mod redis;
pub mod replicated;
#[cfg(test)]
pub(crate) mod test_server;

pub use gate::{Admission, Gate, Pass, Refused, Ticket};
pub use lease::{Fence, Leader, Lease};
pub use redis::{Redis, Unavailable};

/// What a Slack retry of a command already taken hears (the first delivery does the work).
pub const ALREADY_RECEIVED: &str = "This request was already received; see the message above.";

/// What a person hears when a command can't be taken because the shared state is down.
pub const UNAVAILABLE_MESSAGE: &str = ":warning: Slipway can't reach its shared state (Redis) \
right now, so nothing was run or recorded. Try again in a minute; if this keeps happening, tell \
the platform team (this replica's /readyz is failing).";
