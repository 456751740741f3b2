use std::process::ExitCode;

fn main() -> ExitCode {
    houba::cli::main()
}
