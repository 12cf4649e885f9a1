//! First start without a browser: create `admin` when there are no users, and the token in
//! `HANGAR_BOOTSTRAP_TOKEN` if it does not exist yet, so CI and scripts can start at once.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::catalog::Db;
use anyhow::Context as _;

use super::password;
use super::token::Secret;
use crate::catalog::{self, Actor, tokens::NewToken};
use crate::domain::{Role, UserName};

/// What bootstrap did, for the operator to see once.
#[derive(Debug, Default)]
pub struct Bootstrapped {
    /// A generated admin password and the file it was written to.
    pub generated_password: Option<(String, PathBuf)>,
    pub created_admin: bool,
    pub created_token: bool,
}

pub async fn bootstrap(
    pool: &Db,
    data_dir: &Path,
    admin_password: Option<&str>,
    bootstrap_token: Option<&str>,
) -> anyhow::Result<Bootstrapped> {
    let mut done = Bootstrapped::default();
    let admin = UserName::parse("admin").context("the built-in admin name")?;
    let system = Actor::system();
    if catalog::users::count(pool).await? == 0 {
        let password = match admin_password {
            Some(given) => {
                password::check_strength(given).map_err(|e| anyhow::anyhow!("HANGAR_ADMIN_PASSWORD: {e}"))?;
                given.to_owned()
            }
            None => {
                let generated = password::generate();
                let path = data_dir.join("initial-admin-password");
                write_private(&path, &generated)?;
                done.generated_password = Some((generated.clone(), path));
                generated
            }
        };
        let hash = password::hash(password).await?;
        catalog::users::create(pool, &system, &admin, Role::Admin, &hash).await?;
        done.created_admin = true;
    }
    if let Some(raw) = bootstrap_token {
        let secret = Secret::parse(raw).ok_or_else(|| {
            anyhow::anyhow!("HANGAR_BOOTSTRAP_TOKEN: expected hgr_ followed by at least 43 base64url characters")
        })?;
        if !catalog::tokens::hash_exists(pool, &secret.hash()).await? {
            let owner = catalog::users::list(pool)
                .await?
                .into_iter()
                .find(|u| u.role == Role::Admin && !u.disabled)
                .context("HANGAR_BOOTSTRAP_TOKEN: there is no enabled admin to own it")?;
            let new = NewToken {
                user: &owner.name,
                name: "bootstrap",
                prefix: secret.prefix(),
                secret_hash: &secret.hash(),
                role: Role::Admin,
                models: None,
                expires_at: None,
            };
            catalog::tokens::create(pool, &system, new).await?;
            done.created_token = true;
        }
    }
    Ok(done)
}

/// Writes a secret to a file only its owner can read.
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", path.display()))?;
    file.sync_all()?;
    Ok(())
}
