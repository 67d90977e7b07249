//! The `authledger` binary: everything but the exit code lives in the library.

fn main() {
    std::process::exit(authledger::cli::main());
}
