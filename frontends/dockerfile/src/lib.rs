//! The Dockerfile frontend: source text → AST (`parser`) → typed instructions
//! (`instructions`) → IR graph (`lower`). Word expansion lives in `shell`.
//! This crate does no I/O: the caller hands it the Dockerfile's text, the
//! `.dockerignore` text and a resolver for base-image configs.

pub mod error;
pub mod instructions;
pub mod lower;
pub mod parser;
pub mod shell;

pub use error::{Error, Location, Result};
