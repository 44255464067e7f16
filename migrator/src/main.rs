//! `migrator`: parses the command line, makes the admin API's client and runs the command
//! ([`migrator::commands::run`]); prints what failed and sets the exit status.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use migrator::cli::Cli;
use migrator::client::{AdminClient, Transport};
use migrator::commands;
use migrator::progress::Reporter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let transport = Transport {
        cacert: cli.cacert.clone(),
        connect_timeout: Duration::from_secs(cli.connect_timeout),
        read_timeout: Duration::from_secs(cli.read_timeout),
        retries: cli.retries,
    };
    let client = match AdminClient::new(&cli.endpoint, &cli.token, &transport) {
        Ok(client) => client,
        Err(message) => {
            eprintln!("migrator: {message}");
            return ExitCode::FAILURE;
        }
    };
    let mut reporter = Reporter::new(cli.json);
    match commands::run(&cli, &client, &mut reporter) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("migrator: {message}");
            ExitCode::FAILURE
        }
    }
}
