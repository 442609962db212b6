//! Solving a build graph: the scheduler decides when each node runs; op
//! executors decide what running means.

pub mod scheduler;
