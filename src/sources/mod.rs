//! Sources: adapters to the outside systems pynchy-status reads (git, SQLite,
//! Docker, LiteLLM, the pynchy host). Each returns typed Rust values and knows
//! nothing about JSON or HTTP.
pub mod db;
pub mod docker;
pub mod gate;
pub mod git;
pub mod litellm;
pub mod litellm_answers;
pub mod litellm_api;
pub mod push;
pub mod pynchy;
pub mod systemd;
pub mod watch;
