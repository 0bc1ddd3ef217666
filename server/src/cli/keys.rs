//! `tracestore keys`: create, list and revoke API keys, in a database file no server holds or
//! on a running server through its admin routes (`/api/v1/admin/keys`).

use super::remote::Remote;
use super::{open_read_only, open_store, table, CliError, Db};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub(super) struct KeysArgs {
    /// Manage the keys of a running server at this base URL (such as http://127.0.0.1:8080)
    /// through its admin routes, instead of a database file.
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// The admin key for --server (made with `tracestore keys create --admin`).
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "TRACESTORE_ADMIN_KEY",
        hide_env_values = true
    )]
    admin_key: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it (it is shown only this once).
    Create {
        /// The project the key gives access to.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        project: Option<String>,
        /// Make an admin key instead: it manages keys through the admin routes and reaches no
        /// project's data.
        #[arg(long)]
        admin: bool,
    },
    /// List every key: prefix, project ("(admin)" for admin keys), creation and revocation dates.
    List,
    /// Revoke the key(s) with this prefix.
    Revoke {
        /// The key prefix as `keys list` shows it (the 8 hex characters after `ts_`), with or
        /// without `ts_`.
        prefix: String,
    },
}

/// A key just made, from a file or from the server.
struct Created {
    key: String,
    prefix: String,
    project: String,
    admin: bool,
}

/// One row of `keys list`.
struct Listed {
    prefix: String,
    project: String,
    admin: bool,
    created: String,
    revoked: Option<String>,
}

pub(super) fn run(db: &Db, args: KeysArgs) -> Result<(), CliError> {
    match &args.server {
        Some(server) => {
            db.check_remote()?;
            let key = args.admin_key.clone().ok_or_else(|| {
                CliError::new(
                    "--server needs --admin-key KEY (or TRACESTORE_ADMIN_KEY); make one with \
                     `tracestore keys create --admin --db FILE` while no server holds the file",
                )
            })?;
            let remote = Remote::new(server, key, "--admin-key")?;
            on_server(&remote, args.command)
        }
        None => on_file(db.path(), args.command),
    }
}

fn on_file(db: &std::path::Path, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Create { project, admin } => {
            let store = open_store(db, true)?;
            let k = match project {
                Some(p) if !admin => store.create_api_key(&p)?,
                _ => store.create_admin_key()?,
            };
            print_created(&Created {
                key: k.key,
                prefix: k.prefix,
                project: k.project,
                admin: k.admin,
            });
        }
        KeysCommand::List => {
            let store = open_read_only(db)?;
            let keys = store
                .list_api_keys()?
                .into_iter()
                .map(|k| Listed {
                    prefix: k.prefix,
                    project: k.project,
                    admin: k.admin,
                    created: k.created_at.to_string(),
                    revoked: k.revoked_at.map(|t| t.to_string()),
                })
                .collect();
            print_list(keys);
        }
        KeysCommand::Revoke { prefix } => {
            let store = open_store(db, false)?;
            match store.revoke_api_key(&prefix)? {
                0 => return Err(none_revoked(&prefix)),
                n => print_revoked(n as u64, &prefix),
            }
        }
    }
    Ok(())
}

fn on_server(remote: &Remote, command: KeysCommand) -> Result<(), CliError> {
    const KEYS: [&str; 4] = ["api", "v1", "admin", "keys"];
    match command {
        KeysCommand::Create { project, admin } => {
            let body = match project {
                Some(p) if !admin => json!({ "project": p }),
                _ => json!({ "admin": true }),
            };
            let data = remote.call(Method::POST, &KEYS, &[], Some(body))?;
            let field = |name: &str| -> Result<String, CliError> {
                data[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| unexpected(&data, name))
            };
            print_created(&Created {
                key: field("key")?,
                prefix: field("prefix")?,
                project: data["project"].as_str().unwrap_or("").to_string(),
                admin: data["admin"].as_bool().unwrap_or(false),
            });
        }
        KeysCommand::List => {
            let data = remote.call(Method::GET, &KEYS, &[], None)?;
            let rows = data["keys"]
                .as_array()
                .ok_or_else(|| unexpected(&data, "keys"))?;
            let keys = rows
                .iter()
                .map(|k| Listed {
                    prefix: k["prefix"].as_str().unwrap_or("?").to_string(),
                    project: k["project"].as_str().unwrap_or("").to_string(),
                    admin: k["admin"].as_bool().unwrap_or(false),
                    created: k["createdAt"].as_str().unwrap_or("?").to_string(),
                    revoked: k["revokedAt"].as_str().map(str::to_string),
                })
                .collect();
            print_list(keys);
        }
        KeysCommand::Revoke { prefix } => {
            let path = [KEYS[0], KEYS[1], KEYS[2], KEYS[3], prefix.as_str()];
            match remote.call(Method::DELETE, &path, &[], None) {
                Ok(data) => {
                    let n = data["revoked"]
                        .as_u64()
                        .ok_or_else(|| unexpected(&data, "revoked"))?;
                    print_revoked(n, &prefix);
                }
                Err(e) if e.code.as_deref() == Some("NOT_FOUND") => {
                    // The server's own words too: a server without the admin routes says 404.
                    return Err(CliError::new(format!(
                        "no active API key with prefix {prefix:?} on the server ({})",
                        e.error.message
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn unexpected(data: &Value, field: &str) -> CliError {
    CliError::new(format!(
        "the server's answer has no {field:?}: {data} (is it a tracestore server of this version?)"
    ))
}

fn none_revoked(prefix: &str) -> CliError {
    CliError::new(format!(
        "no active API key with prefix {prefix:?} (see `tracestore keys list`)"
    ))
}

fn print_created(k: &Created) {
    if k.admin {
        eprintln!(
            "Created admin key {} (it manages keys through /api/v1/admin/keys and reaches no \
             project's data). It is shown only once; store it now:",
            k.prefix
        );
    } else {
        eprintln!(
            "Created API key {} for project \"{}\". It is shown only once; store it now:",
            k.prefix, k.project
        );
    }
    println!("{}", k.key);
}

fn print_list(keys: Vec<Listed>) {
    if keys.is_empty() {
        eprintln!("no API keys (create one with `tracestore keys create --project NAME`)");
        return;
    }
    let rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|k| {
            vec![
                k.prefix,
                if k.admin {
                    "(admin)".to_string()
                } else {
                    k.project
                },
                k.created,
                k.revoked.unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["PREFIX", "PROJECT", "CREATED", "REVOKED"], &rows, &[])
    );
}

fn print_revoked(n: u64, prefix: &str) {
    println!("revoked {n} key(s) with prefix {prefix}");
}
