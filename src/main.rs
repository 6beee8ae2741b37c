//! The `layerlet` command: parse, set up logging, dispatch, map errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Helpers re-executed by layerlet itself: dispatched before anything else starts, so they
    // stay single-threaded (a monitor forks and clones).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = cli::helpers::dispatch(&argv) {
        return code;
    }
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAYERLET_LOG").unwrap_or_else(|_| {
        // The kube client logs an ERROR of its own for every failed request; layerlet
        // says once that the API server is away and once that it is back.
        tracing_subscriber::EnvFilter::new(format!(
            "{},kube_client=off,kube_runtime=off",
            args.log_level.as_str()
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, without repeating what a cause already said.
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
