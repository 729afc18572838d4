//! cdn-task-exporter: a Prometheus exporter for CDN purge (refresh) and
//! prefetch (preload) tasks across several vendors, each queried within its
//! rate budget and cached between scrapes.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod collector;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod secret;
pub mod server;
pub mod shard;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod task;
pub mod vendors;
pub mod web;
pub mod web_config;
