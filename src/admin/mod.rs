//! `hangar admin …`: user and token administration straight on a data dir, without a
//! running server or a token (for bootstrap, scripts and a lost admin password). SQLite
//! handles a server running at the same time; its token cache sees changes within seconds.
//! Backup, restore and fsck have their rules in their own modules; this is their CLI glue.

mod backup;
mod fsck;

use std::io::BufRead as _;
use std::path::Path;

use crate::catalog::Db;
use anyhow::Context as _;

use crate::auth::token::{Secret, parse_lifetime};
use crate::auth::{now_unix, password};
use crate::blobs::BucketSettings;
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
    /// Copy the database and every blob it names into DEST (empty or absent), while a server
    /// may keep running and taking writes.
    Backup {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        dest: std::path::PathBuf,
    },
    /// Restore a backup into a new data dir (empty or absent).
    Restore {
        src: std::path::PathBuf,
        #[arg(long)]
        data_dir: std::path::PathBuf,
    },
    /// Check a data dir: blobs against their rows, orphans, snapshots, staging leftovers.
    /// Exits non-zero when something is wrong.
    Fsck {
        #[arg(long, env = "HANGAR_DATA_DIR", default_value = "./hangar-data")]
        data_dir: std::path::PathBuf,
        /// Hash every blob, not only check its size.
        #[arg(long)]
        full: bool,
        /// Remove staging leftovers, orphans past the grace period and snapshots of deleted
        /// versions (never catalog rows). Refused while a server holds the data dir.
        #[arg(long)]
        repair: bool,
        /// Orphan blobs younger than this are left alone (an upload may be committing them).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        /// Where the blobs live, as the server's blob_store: "local" or s3://BUCKET/PREFIX
        /// (endpoint, region and credentials from the AWS_* environment).
        #[arg(long, env = "HANGAR_BLOB_STORE", value_name = "URL")]
        blob_store: Option<String>,
    },
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

/// Runs `command`; with `database_url`, users and tokens are managed in that Postgres
/// database instead of the data dir's `hangar.db`.
pub async fn run(command: AdminCommand, database_url: Option<String>) -> anyhow::Result<()> {
    let url = database_url.as_deref();
    let actor = Actor { user: Some("admin-cli".into()), ..Actor::default() };
    match command {
        AdminCommand::Token(TokenCommand::Create { data_dir, role, name, user, expires, models }) => {
            let pool = open(&data_dir, url).await?;
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
        AdminCommand::User(command) => user(command, url, &actor).await?,
        AdminCommand::Backup { data_dir, dest } => {
            let copied = backup::copy_data_dir(&data_dir, &dest).await?;
            println!("backed up {copied} to {}", dest.display());
        }
        AdminCommand::Restore { src, data_dir } => {
            let copied = backup::copy_data_dir(&src, &data_dir).await?;
            println!("restored {copied} into {}", data_dir.display());
        }
        AdminCommand::Fsck { data_dir, full, repair, grace_secs, blob_store } => {
            let bucket = match blob_store.as_deref() {
                None | Some("local") => None,
                Some(store) => Some(BucketSettings::parse(store).map_err(anyhow::Error::msg)?),
            };
            let pool = open(&data_dir, url).await?;
            // Held until fsck ends, so no server starts on the dir while it repairs.
            let lock = std::fs::File::open(data_dir.join("hangar.lock")).ok();
            let server_running = lock.as_ref().is_some_and(|file| file.try_lock().is_err());
            let options = fsck::Options { full, repair, grace_secs };
            let findings = fsck::check(&pool, &data_dir, bucket.as_ref(), options, server_running).await?;
            if server_running {
                println!("a server holds this data dir: tmp/ was not checked");
            }
            anyhow::ensure!(fsck::report(&findings), "fsck found problems it did not repair");
        }
    }
    Ok(())
}

async fn user(command: UserCommand, url: Option<&str>, actor: &Actor) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { data_dir, name, role, password_stdin } => {
            let pool = open(&data_dir, url).await?;
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
            let pool = open(&data_dir, url).await?;
            for user in catalog::users::list(&pool).await.map_err(describe)? {
                let state = if user.disabled { "disabled" } else { "enabled" };
                println!("{}\t{}\t{state}", user.name, user.role);
            }
        }
        UserCommand::SetRole { data_dir, name, role } => {
            let pool = open(&data_dir, url).await?;
            let user = catalog::users::update(&pool, actor, &UserName::parse(&name)?, Some(Role::parse(&role)?), None)
                .await
                .map_err(describe)?;
            println!("{} is now {}", user.name, user.role);
        }
        UserCommand::Disable { data_dir, name } => set_disabled(&data_dir, url, actor, &name, true).await?,
        UserCommand::Enable { data_dir, name } => set_disabled(&data_dir, url, actor, &name, false).await?,
        UserCommand::ResetPassword { data_dir, name, password_stdin, keep_tokens } => {
            let pool = open(&data_dir, url).await?;
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

async fn set_disabled(
    data_dir: &Path,
    url: Option<&str>,
    actor: &Actor,
    name: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let pool = open(data_dir, url).await?;
    let user =
        catalog::users::update(&pool, actor, &UserName::parse(name)?, None, Some(disabled)).await.map_err(describe)?;
    println!("{} is {}", user.name, if user.disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// Opens the catalog: the Postgres database `url` names, or an existing data dir's database
/// (a missing one is an error, not a new catalog).
async fn open(data_dir: &Path, url: Option<&str>) -> anyhow::Result<Db> {
    if let Some(url) = url {
        return catalog::connect(Some(url), data_dir).await.context("cannot open the catalog");
    }
    let db = data_dir.join("hangar.db");
    anyhow::ensure!(db.is_file(), "no Hangar database at {}; start `hangar serve` on it once first", db.display());
    catalog::open(&db).await.map(Db::Sqlite).context("cannot open the catalog")
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
