//! The `cdn-task-exporter` binary. Everything it does lives in the library
//! (`cli` parses flags and dispatches, `app::serve` runs the exporter,
//! `demo::run` the simulated vendors), so tests drive it without a process.

fn main() -> std::process::ExitCode {
    cdn_task_exporter::cli::main()
}
