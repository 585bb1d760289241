//! The command line's own modules: one per family of commands, each
//! with its clap arguments and its `run`, over what they share (the
//! error type, global flags, output formatting).

pub mod branch;
pub mod check;
pub mod common;
pub mod demo;
pub mod import;
pub mod output;
pub mod publish;
pub mod read;
#[cfg(feature = "serve")]
pub mod serve;
pub mod write;
