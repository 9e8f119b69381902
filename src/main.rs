//! The `activegate-lifecycle` command: parse, start telemetry, dispatch.

mod cli;
mod demo;
mod telemetry;

fn main() -> std::process::ExitCode {
    cli::main()
}
