fn main() -> std::process::ExitCode {
    tracestore_server::cli::main()
}
