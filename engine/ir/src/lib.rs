//! The DAG IR shared by every frontend.
pub mod ignore;
