//! `migrator`: the operators' command-line tool for the Worker's admin API.
//!
//! It speaks HTTP to a running Worker (`--endpoint`, or `MIGRATOR_ENDPOINT`), locally under
//! `wrangler dev` or deployed. For now it checks that the Worker answers; migration, rollback and
//! the other operator commands arrive with the admin API they drive.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "migrator", version, about)]
struct Cli {
    /// Base URL of the Worker, e.g. http://127.0.0.1:8787 or https://<worker>.<account>.workers.dev
    #[arg(
        long,
        env = "MIGRATOR_ENDPOINT",
        global = true,
        default_value = "http://127.0.0.1:8787"
    )]
    endpoint: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks that the Worker answers `GET /api/health`.
    Health,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Health => health(&cli.endpoint),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("migrator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn health(endpoint: &str) -> Result<String, String> {
    let url = format!("{}/api/health", endpoint.trim_end_matches('/'));
    let mut response = ureq::get(&url)
        .call()
        .map_err(|err| format!("cannot reach the Worker at {endpoint}: {err}"))?;
    let body: serde_json::Value = response
        .body_mut()
        .read_json()
        .map_err(|err| format!("{url} did not answer JSON: {err}"))?;
    if body["status"] == "ok" {
        Ok(format!("{endpoint}: ok"))
    } else {
        Err(format!("{url} answered {body}"))
    }
}
