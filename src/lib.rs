//! shopfeat: a Shopify shop's raw data → machine-learning feature tables.
//!
//! The pipeline reads top to bottom, one module per stage:
//! [`land`] (raw files → immutable Parquet snapshots; [`shopify`] fetches them) →
//! [`normalize`] (snapshots → main tables, Polars lazy) → [`features`] (main
//! tables → feature tables; [`clv`] fits the lifetime-value models) → [`sinks`] (Parquet, DuckDB, Gorse). [`pipeline`] is
//! the one way to run those stages, with typed reports; [`commands`] only parse
//! arguments, call it and print. [`generate`] makes synthetic shops in the raw
//! shapes; [`storage`] is the data root with atomic writes. [`serve`] is the
//! long-running intake (webhooks, pixel events) that runs the pipeline in
//! debounced cycles; [`fleet`] resolves the config file's shops.

pub mod cli;
pub mod clv;
pub mod config;
pub mod evaluate;
pub mod failpoint;
pub mod commands;
pub mod features;
pub mod fleet;
pub mod generate;
pub mod hash;
pub mod history;
pub mod http;
pub mod land;
pub mod lock;
pub mod normalize;
pub mod peer;
pub mod pipeline;
pub mod privacy;
pub mod progress;
pub mod report;
pub mod retry;
pub mod serve;
pub mod shopify;
pub mod sinks;
pub mod state;
pub mod status;
pub mod storage;
pub mod time;
pub mod trainset;
pub mod vocabulary;
