//! The `hangar` command: parse, init telemetry, dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangar::config::{Overrides, Settings};
use hangar::startup::Application;

#[derive(Parser)]
#[command(
    name = "hangar",
    version,
    about = "Self-hosted model registry and launcher"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: catalog, blob store and REST API.
    Serve(Overrides),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    hangar::telemetry::init();
    let result = match cli.command {
        Command::Serve(overrides) => serve(&overrides).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hangar: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(overrides: &Overrides) -> anyhow::Result<()> {
    let settings = Settings::load(overrides)?;
    let listen = settings.listen;
    let app = Application::build(settings).await?;
    let url = format!("http://{}:{}", listen.ip(), app.port());
    println!("hangar is serving on {url}");
    app.run_until_stopped().await?;
    Ok(())
}
