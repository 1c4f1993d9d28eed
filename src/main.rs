//! The `taskdb` command: everything lives in [`taskdb::cli`].

fn main() -> std::process::ExitCode {
    taskdb::cli::main()
}
