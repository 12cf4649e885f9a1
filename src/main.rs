//! The `hangar` command: parse, init telemetry, dispatch.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangar::admin::AdminCommand;
use hangar::client::ClientCommand;
use hangar::config::{Overrides, Settings};
use hangar::startup::Application;
use hangar::telemetry::LogFormat;

#[derive(Parser)]
#[command(name = "hangar", version = hangar::VERSION, about = "Self-hosted model registry and launcher")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: catalog, blob store and REST API.
    Serve(Overrides),
    /// Manage users and tokens directly on a data dir, without a server.
    Admin(AdminArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The server's `database_url`, when its catalog is in Postgres: users and tokens are
    /// managed and fsck checks there. Backup and restore copy a data dir's `hangar.db` only.
    #[arg(long, env = "HANGAR_DATABASE_URL", global = true, value_name = "URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match LogFormat::from_env() {
        Ok(format) => hangar::telemetry::init(format),
        Err(e) => {
            eprintln!("hangar: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Serve(overrides) => serve(&overrides).await,
        Command::Admin(AdminArgs { database_url, command }) => hangar::admin::run(command, database_url).await,
        // Exit codes of their own: 3 not found, 4 conflict, 5 auth.
        Command::Client(command) => return hangar::client::run(command).await,
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
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    let app = Application::build(settings).await?;
    if let Some((password, path)) = &app.bootstrapped().generated_password {
        println!("created user 'admin' with password {password} (also in {}; shown once)", path.display());
    }
    let url = format!("{scheme}://{}:{}", listen.ip(), app.port());
    println!("hangar is serving on {url}");
    app.run_until_stopped().await?;
    Ok(())
}
