//! The `gardefou` command.

use clap::Parser;

/// mimalloc: a gateway allocates many small, short-lived buffers per request; it is measurably
/// cheaper than the system allocator for that (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = gardefou::cli::Cli::parse();
    if let Some(dir) = &cli.models_dir {
        // Read by the config (`models:` paths) and the embedding classifier; set before any
        // other thread exists.
        std::env::set_var("GARDEFOU_MODELS_DIR", dir);
    }
    gardefou::telemetry::init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gardefou: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gardefou::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gardefou: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
