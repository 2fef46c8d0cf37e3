//! Sinks: where computed feature tables go. Each takes the tables of one run and
//! either writes all of them or leaves the previous outputs as they were.

pub mod duckdb;
pub mod generation;
pub mod parquet;
pub mod gorse;
