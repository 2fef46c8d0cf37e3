//! Integration tests, in one binary: every test file would otherwise link the
//! whole dependency tree again.

mod as_of;
mod bad_input;
mod behavior_features;
mod bulk_order;
mod cli;
mod collection_features;
mod common;
mod crash;
mod duckdb_views;
mod fetch;
mod fields;
mod gorse_export;
mod generations;
mod gorse_standin;
mod graphql;
mod history;
mod http;
mod interaction_features;
mod lifetime;
mod lock;
mod normalize_fixture;
mod pair_features;
mod product_features;
mod registry;
mod report;
mod rest_examples;
mod s3;
mod safety;
mod sample;
mod search_features;
mod session_features;
mod shopify_fake;
mod status;
mod storage;
mod user_features;
