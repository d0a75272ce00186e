//! Slack: request signing, payload parsing into domain events, and the Web API client.

pub mod channels;
pub mod client;
pub mod events;
pub mod signature;
pub mod surface;
pub mod users;
