/// The server's allocator (see server/Cargo.toml); the library itself sets none.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracestore_server::cli::main()
}
