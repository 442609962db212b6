pub mod build;
pub mod debug;
pub mod graph;
