//! The client half of the `hangar` binary: `push`, `pull`, `ls`, `show`, `alias`, `deploy`,
//! `stop`, `logs`, `token` and `events`, each a few calls to a server's REST API. The
//! server and token come from `--url`/`HANGAR_URL` and `--token`/`HANGAR_TOKEN`. Output is
//! text for people, or JSON with `--json`; the exit code says what kind of failure it was
//! (see `error`).

mod commands;
mod error;
mod http;
mod local;
mod output;
mod parts;
mod progress;
mod pull;
mod push;
mod target;
mod views;

use std::process::ExitCode;

pub use error::ClientError;
use output::Output;

/// Where the server is and how to talk to it: flattened into every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// The Hangar server.
    #[arg(long, env = "HANGAR_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// An API token (hgr_…).
    #[arg(long, env = "HANGAR_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON on stdout, for scripts, instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM CA certificate (or bundle) to trust for an https:// server, besides the system's.
    #[arg(long, env = "HANGAR_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Upload a file or directory as a version of a model, publish it, set an alias.
    Push(push::PushArgs),
    /// Download a version's files into a directory, verified; continues an interrupted pull.
    Pull(pull::PullArgs),
    /// List models, or the versions of one.
    Ls(commands::LsArgs),
    /// Show a model, or a version and its files.
    Show(commands::ShowArgs),
    /// Point an alias at a version.
    Alias(commands::AliasArgs),
    /// Run a version in a container.
    Deploy(commands::DeployArgs),
    /// Stop a deployment.
    Stop(commands::StopArgs),
    /// Print a deployment's container output.
    Logs(commands::LogsArgs),
    /// Create, list and revoke API tokens.
    Token(commands::TokenArgs),
    /// Print the audit log, or follow it.
    Events(commands::EventsArgs),
    /// Print requests and tokens through the gateway, by deployment, model, user or token.
    Usage(commands::UsageArgs),
    /// List the nodes sharing the catalog: up or down, GPUs, deployments.
    Nodes(commands::NodesArgs),
}

impl ClientCommand {
    fn remote(&self) -> &Remote {
        match self {
            Self::Push(a) => &a.remote,
            Self::Pull(a) => &a.remote,
            Self::Ls(a) => &a.remote,
            Self::Show(a) => &a.remote,
            Self::Alias(a) => &a.remote,
            Self::Deploy(a) => &a.remote,
            Self::Stop(a) => &a.remote,
            Self::Logs(a) => &a.remote,
            Self::Token(a) => &a.remote,
            Self::Events(a) => &a.remote,
            Self::Usage(a) => &a.remote,
            Self::Nodes(a) => &a.remote,
        }
    }
}

/// Runs a client command; errors are printed to stderr (and as JSON on stdout with
/// `--json`), and become the exit code of their kind.
pub async fn run(command: ClientCommand) -> ExitCode {
    let out = Output { json: command.remote().json };
    match dispatch(&command, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hangar: {e}");
            if out.json {
                println!("{}", serde_json::json!({ "error": { "kind": e.kind(), "message": e.to_string() } }));
            }
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(command: &ClientCommand, out: Output) -> Result<(), ClientError> {
    let client = http::Client::new(command.remote())?;
    match command {
        ClientCommand::Push(args) => push::push(&client, args, out).await,
        ClientCommand::Pull(args) => pull::pull(&client, args, out).await,
        ClientCommand::Ls(args) => commands::ls(&client, args, out).await,
        ClientCommand::Show(args) => commands::show(&client, args, out).await,
        ClientCommand::Alias(args) => commands::alias(&client, args, out).await,
        ClientCommand::Deploy(args) => commands::deploy(&client, args, out).await,
        ClientCommand::Stop(args) => commands::stop(&client, args, out).await,
        ClientCommand::Logs(args) => commands::logs(&client, args, out).await,
        ClientCommand::Token(args) => commands::token(&client, args, out).await,
        ClientCommand::Events(args) => commands::events(&client, args, out).await,
        ClientCommand::Usage(args) => commands::usage_report(&client, args, out).await,
        ClientCommand::Nodes(_) => commands::nodes(&client, out).await,
    }
}
