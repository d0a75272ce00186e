//! The GitHub side of the ingress, below the router: the webhook signature and the typed events
//! Slipway acts on. The extractor that uses them is `app::github`.

pub mod events;
pub mod signature;
