use std::process::ExitCode;

fn main() -> ExitCode {
    backout::cli::main()
}
