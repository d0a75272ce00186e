//! Reads after the ack: the workers that run queued jobs and stream them into Slack, the
//! messages they post, and the "Share in channel" button for private output.

pub mod messages;
pub mod runs;
pub mod share;
pub mod shared_runs;
