//! Slack: request signatures, mrkdwn rendering, the Web API client and file transfers.

pub mod client;
pub mod files;
pub mod mrkdwn;
mod secret;
pub mod signature;

pub use client::SlackWebClient;
pub use mrkdwn::{merge_sources, render_reply, split_message, to_mrkdwn, CitedSource, Reply, MAX_MESSAGE_CHARS};
pub use secret::SlackSecret;
pub use signature::{sign, verify, SignatureError};
