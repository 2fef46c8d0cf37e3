//! The pipeline: the one way to run shopfeat's stages, for the commands, the
//! tests and the benchmark alike.
//!
//! ```text
//! land (ingest | fetch | inbox) → normalize → compute → publish → export
//! ```
//!
//! - [`ingest`] / [`fetch`] / [`land_inbox`]: raw files, the Shopify Admin API
//!   or what `serve` received → one immutable raw snapshot under
//!   `<root>/<shop>/raw/` ([`land`](crate::land), [`shopify`](crate::shopify)).
//! - [`normalize`]: every committed snapshot → the main tables at `T`, lazily
//!   ([`normalize`](crate::normalize)); [`write_main_tables`] writes them.
//! - [`compute`]: the main tables → every feature table at `T`, in memory
//!   ([`features`](crate::features)).
//! - [`compute_and_publish`]: [`compute`], each feature table written as soon as
//!   it is made → Parquet and `features.duckdb`, published all or nothing
//!   ([`sinks`](crate::sinks)).
//! - [`export_gorse`]: the published tables → Gorse, only what changed.
//! - [`run`]: the nightly job, composed of the steps above.
//! - [`fast_cycle`]: `serve`'s fast lane — a catalog delivery landed, its
//!   products' own columns recomputed, their items sent to Gorse, in well under a
//!   second whatever the shop's size.
//!
//! Each entry point returns a typed report (rows against entity counts, time and
//! peak memory per stage, skipped records, export counts) that serializes to the
//! JSON of `--json`; none of them prints.

mod compute;
mod export;
mod fast;
mod land;
mod report;
mod run;

pub use compute::{compute, compute_and_publish, compute_and_publish_keeping, explain, normalize, profile, raw_tables, write_main_tables, ComputeOptions, ComputeReport, Computed, NormalizeReport, ProfiledStage};
pub use export::{export_gorse, ExportReport};
pub use fast::{fast_cycle, fast_topics, DeltaTable, FastOptions, FastReport};
pub use land::{fetch, ingest, ingest_once, land_inbox, land_inbox_files, FetchedReport, IngestReport};
pub use report::{resident_bytes, Stage, StageReport, TableRows};
pub use run::{run, Landing, RunOptions, RunReport, Source};
