//! `steward`: one binary around a self-hosted AI agent.
//!
//! `main` stays thin: parse the command line, call [`cli::run`], print any
//! error with its whole chain, and exit with a documented code (see
//! [`cli::exit`]).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Two TLS providers in one tree make rustls panic at first use unless one is installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::usage_error(&err),
    };
    let json = args.json();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => err.report(json),
    }
}
