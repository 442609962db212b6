pub mod build;
pub mod cache;
pub mod debug;
pub mod graph;
