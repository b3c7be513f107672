//! The Slack gateway: `slack-ingress` verifies and acknowledges Slack events and queues the work;
//! `slack-worker` runs each turn through the Bedrock Agent and answers in the thread.

pub mod access;
pub mod assistant;
pub mod attachments;
pub mod classify;
pub mod feedback;
pub mod home;
pub mod ingress;
pub mod interactive;
pub mod reactions;
pub mod status;
pub mod stream;
pub mod work;
pub mod worker;
