//! The `msn-http` command-line program.
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// MSN Messenger over HTTP: the gateway transport, client and server side.
#[derive(Parser)]
#[command(name = "msn-http", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scripted MSNP session through an embedded gateway and print the transcript.
    ///
    /// Example: msn-http demo --policy adaptive
    Demo {
        /// How the client polls while idle.
        #[arg(long, value_enum, default_value_t = Policy::Official)]
        policy: Policy,
    },
}

/// Poll policies, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Policy {
    Official,
    Adaptive,
    LongPoll,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { policy } => demo::run(policy),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("msn-http: {message}");
            ExitCode::FAILURE
        }
    }
}
