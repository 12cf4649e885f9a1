//! `hangar admin …`: user and token administration straight on a data dir, without a
//! running server or a token (for bootstrap, scripts and a lost admin password). SQLite
//! handles a server running at the same time; its token cache sees changes within seconds.

use std::io::BufRead as _;
use std::path::Path;

use anyhow::Context as _;
use sqlx::SqlitePool;

use crate::auth::token::{Secret, parse_lifetime};
use crate::auth::{now_unix, password};
use crate::catalog::{self, Actor, tokens::NewToken};
use crate::domain::{Glob, Role, UserName};

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Owner of the token.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Lifetime such as 30d or 12h; none: never expires.
        #[arg(long)]
        expires: Option<String>,
        /// Limit the token to models matching these globs (repeatable).
        #[arg(long = "model")]
        models: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin with --password-stdin, else generated and printed.
    Create {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
    },
    /// Change a user's role.
    SetRole {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        name: String,
        role: String,
    },
    /// Disable a user: their tokens and password stop working.
    Disable {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        name: String,
    },
    /// Set a new password (from stdin with --password-stdin, else generated and printed).
    /// Ends the user's dashboard sessions and revokes their API tokens.
    ResetPassword {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// Keep the user's API tokens working.
        #[arg(long)]
        keep_tokens: bool,
    },
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    let actor = Actor { user: Some("admin-cli".into()), ..Actor::default() };
    match command {
        AdminCommand::Token(TokenCommand::Create { data_dir, role, name, user, expires, models }) => {
            let pool = open(&data_dir).await?;
            let role = Role::parse(&role)?;
            let user = UserName::parse(&user)?;
            let models = models.iter().map(|g| Glob::parse(g)).collect::<Result<Vec<_>, _>>()?;
            let expires_at = expires
                .map(|e| parse_lifetime(&e).map_err(anyhow::Error::msg))
                .transpose()?
                .map(|secs| now_unix().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)));
            let secret = Secret::generate();
            let new = NewToken {
                user: &user,
                name: &name,
                prefix: secret.prefix(),
                secret_hash: &secret.hash(),
                role,
                models: (!models.is_empty()).then_some(models.as_slice()),
                expires_at,
            };
            catalog::tokens::create(&pool, &actor, new).await.map_err(describe)?;
            println!("{}", secret.expose());
        }
        AdminCommand::User(command) => user(command, &actor).await?,
    }
    Ok(())
}

async fn user(command: UserCommand, actor: &Actor) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { data_dir, name, role, password_stdin } => {
            let pool = open(&data_dir).await?;
            let (name, role) = (UserName::parse(&name)?, Role::parse(&role)?);
            let (password, generated) = password_from(password_stdin)?;
            let hash = password::hash(password.clone()).await?;
            catalog::users::create(&pool, actor, &name, role, &hash).await.map_err(describe)?;
            if generated {
                println!("created {name} ({role}) with password {password}");
            } else {
                println!("created {name} ({role})");
            }
        }
        UserCommand::List { data_dir } => {
            let pool = open(&data_dir).await?;
            for user in catalog::users::list(&pool).await.map_err(describe)? {
                let state = if user.disabled { "disabled" } else { "enabled" };
                println!("{}\t{}\t{state}", user.name, user.role);
            }
        }
        UserCommand::SetRole { data_dir, name, role } => {
            let pool = open(&data_dir).await?;
            let user = catalog::users::update(&pool, actor, &UserName::parse(&name)?, Some(Role::parse(&role)?), None)
                .await
                .map_err(describe)?;
            println!("{} is now {}", user.name, user.role);
        }
        UserCommand::Disable { data_dir, name } => set_disabled(&data_dir, actor, &name, true).await?,
        UserCommand::Enable { data_dir, name } => set_disabled(&data_dir, actor, &name, false).await?,
        UserCommand::ResetPassword { data_dir, name, password_stdin, keep_tokens } => {
            let pool = open(&data_dir).await?;
            let name = UserName::parse(&name)?;
            let (password, generated) = password_from(password_stdin)?;
            let hash = password::hash(password.clone()).await?;
            catalog::users::set_password(&pool, actor, &name, &hash, !keep_tokens).await.map_err(describe)?;
            if generated {
                println!("new password for {name}: {password}");
            } else {
                println!("password of {name} changed");
            }
        }
    }
    Ok(())
}

async fn set_disabled(data_dir: &Path, actor: &Actor, name: &str, disabled: bool) -> anyhow::Result<()> {
    let pool = open(data_dir).await?;
    let user =
        catalog::users::update(&pool, actor, &UserName::parse(name)?, None, Some(disabled)).await.map_err(describe)?;
    println!("{} is {}", user.name, if user.disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// Opens an existing data dir's database; a missing one is an error, not a new catalog.
async fn open(data_dir: &Path) -> anyhow::Result<SqlitePool> {
    let db = data_dir.join("hangar.db");
    anyhow::ensure!(db.is_file(), "no Hangar database at {}; start `hangar serve` on it once first", db.display());
    catalog::open(&db).await.context("cannot open the catalog")
}

fn password_from(stdin: bool) -> anyhow::Result<(String, bool)> {
    if !stdin {
        return Ok((password::generate(), true));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    password::check_strength(&password)?;
    Ok((password, false))
}

/// Catalog errors carry their message in Display; the database case gets its cause.
fn describe(err: catalog::CatalogError) -> anyhow::Error {
    match err {
        catalog::CatalogError::Db { source, at } => {
            anyhow::Error::new(source).context(format!("database error at {at}"))
        }
        other => anyhow::anyhow!("{other}"),
    }
}
