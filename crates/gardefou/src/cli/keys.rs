//! `gardefou keys create | list | rotate | revoke` and `gardefou audit`: the key lifecycle and
//! the audit log straight on the store (the config's `store.database_url`, or `--database`).
//! Changes are audited as `cli:<user>`; running gateways pick them up within a second.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use gardefou_store::{KeyLimits, KeyRecord};

use super::open_store;
use crate::auth::KeyTable;
use crate::control::keys::{self, KeySpec};

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Config file whose store to use [default: as for `serve`]
    #[arg(long, short, env = "GARDEFOU_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL, instead of the config's `store.database_url`
    #[arg(long, global = true)]
    pub database: Option<String>,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once, only its hash is stored.
    Create(Box<CreateArgs>),
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        team: Option<String>,
        /// JSON lines instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Give a key a new secret (printed once); the old one stops working.
    Rotate { id: String },
    /// Revoke a key, on every replica within a second.
    Revoke { id: String },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The owning team (required for API keys; the scope of an operator or viewer key)
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long)]
    pub product: Option<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// Routes the key may call, comma-separated; `*` wildcards (default: every route)
    #[arg(long, value_delimiter = ',')]
    pub routes: Vec<String>,
    /// Expire after this long (e.g. 30d)
    #[arg(long)]
    pub expires_in: Option<String>,
    /// Requests per minute
    #[arg(long)]
    pub rpm: Option<i64>,
    /// Tokens per minute
    #[arg(long)]
    pub tpm: Option<i64>,
    /// Budget in USD
    #[arg(long)]
    pub budget_usd: Option<f64>,
    /// Budget window: day or month [default: month]
    #[arg(long)]
    pub budget_window: Option<String>,
    /// Metadata, key=value, repeatable
    #[arg(long = "meta", value_parser = parse_pair)]
    pub metadata: Vec<(String, String)>,
    /// Make an admin-plane key with this role: admin, operator or viewer
    #[arg(long)]
    pub admin_role: Option<String>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not key=value"))
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this team's entries
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()))
}

pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    // The CLI changes the store; the key table here only satisfies the shared code.
    let table = KeyTable::default();
    let result = match args.command {
        KeysCommand::Create(a) => {
            let spec = KeySpec {
                kind: a.admin_role.as_ref().map(|_| "admin".to_owned()),
                role: a.admin_role,
                team: a.team,
                product: a.product,
                name: a.name,
                routes: a.routes,
                expires_in: a.expires_in,
                limits: KeyLimits {
                    rpm: a.rpm,
                    tpm: a.tpm,
                    budget_usd: a.budget_usd,
                    budget_window: a.budget_window,
                },
                metadata: a.metadata.into_iter().collect::<BTreeMap<_, _>>(),
            };
            match keys::validate(&spec) {
                Ok(record) => keys::create(&store, &table, &actor(), record).await.map(|issued| {
                    println!("{}", issued.secret);
                    eprintln!(
                        "created key {} ({}); the secret above is shown only once",
                        issued.record.id, issued.record.prefix
                    );
                }),
                Err(e) => Err(e),
            }
        }
        KeysCommand::List { team, json } => {
            let all = store.list_keys(team.as_deref()).await?;
            if json {
                for k in &all {
                    println!("{}", serde_json::to_string(k)?);
                }
            } else {
                print!("{}", table_of(&all));
            }
            Ok(())
        }
        KeysCommand::Rotate { id } => keys::rotate(&store, &table, &actor(), &id).await.map(|issued| {
            println!("{}", issued.secret);
            eprintln!("rotated key {id}; the old secret no longer works");
        }),
        KeysCommand::Revoke { id } => keys::revoke(&store, &table, &actor(), &id).await.map(|_| {
            eprintln!("revoked key {id}");
        }),
    };
    store.close().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("gardefou: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    for e in store.list_audit(args.team.as_deref(), args.limit.clamp(1, 10_000)).await? {
        println!("{}", serde_json::to_string(&e)?);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn table_of(keys: &[KeyRecord]) -> String {
    let mut out = format!(
        "{:<14} {:<24} {:<6} {:<12} {:<12} {:<8} {}\n",
        "id", "prefix", "kind", "team", "product", "state", "routes"
    );
    let now = crate::auth::now_ms();
    for k in keys {
        let state = if k.revoked_at_ms.is_some() {
            "revoked"
        } else if k.expires_at_ms.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "live"
        };
        let kind = match (&k.kind, &k.role) {
            (gardefou_store::KeyKind::Admin, Some(r)) => r.as_str(),
            _ => "api",
        };
        out.push_str(&format!(
            "{:<14} {:<24} {:<6} {:<12} {:<12} {:<8} {}\n",
            k.id,
            k.prefix,
            kind,
            k.team.as_deref().unwrap_or("-"),
            k.product.as_deref().unwrap_or("-"),
            state,
            if k.routes.is_empty() { "*".to_owned() } else { k.routes.join(",") }
        ));
    }
    out
}
