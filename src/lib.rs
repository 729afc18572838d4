//! cdn-task-exporter: a Prometheus exporter for CDN purge (refresh) and
//! prefetch (preload) tasks across several vendors, each queried within its
//! rate budget and cached between scrapes.

pub mod app;
pub mod auth;
pub mod clock;
pub mod collector;
pub mod config;
pub mod demo;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod secret;
pub mod sim;
pub mod task;
pub mod vendors;
pub mod web_config;
