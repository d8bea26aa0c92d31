//! `plugboard`: the service and its operator commands. Each operator command prints exactly one JSON object on
//! stdout and exits 0, or prints a clear message on stderr and exits non-zero. Logs always go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use plugboard_server::auth::generate_token;
use plugboard_server::vault::{resolve_master_key, rotate};
use plugboard_server::{App, Application, Config, ConfigArgs, LogFormat};
use plugboard_store::{Role, Store, TokenId, UserId, UserRemoval, WorkspaceId};

#[derive(Parser)]
#[command(
    name = "plugboard",
    version,
    about = "MCP connector catalog and credential vault"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Operator commands on users, workspaces, members, crews and tokens.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Catalog tools.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Vault tools.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    Crew {
        #[command(subcommand)]
        command: CrewCommand,
    },
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Make a single-use sign-in link for a user, valid 15 minutes: prints {"url","expires_at"}.
    LoginLink {
        /// The user's id (see `admin user list`).
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user: prints {"id"}.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List every user: prints {"items":[{"id","email","name","created_at"}]}.
    List,
    /// Remove a user with their sessions, sign-in links, tokens and memberships: prints {"id","removed":true}.
    Remove {
        /// The user's id (see `admin user list`).
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace owned by a user: prints {"id"}.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner: String,
    },
    /// List every workspace: prints {"items":[{"id","name","created_at","members"}]}.
    List,
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a member (or change a member's role): prints {"workspace_id","user_id","role"}.
    Add {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum CrewCommand {
    /// Create a crew in a workspace: prints {"id"}.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token: prints {"id","token"}; the token is shown this once only.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke an API token: prints {"id","revoked":true}.
    Revoke {
        #[arg(long)]
        id: String,
    },
    /// List a user's API tokens, revoked ones included (never a token itself): prints {"items":[{"id","name",
    /// "created_at","last_used_at","expires_at","revoked_at"}]}.
    List {
        /// The user's id (see `admin user list`).
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Validate manifest files or folders: prints {"valid","invalid":[{"file","error"}]}; exit 0 only if all valid.
    Lint {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Convert MCP Registry server.json entries into manifests: prints {"written","skipped":[{"name","reason"}]}.
    ImportRegistry {
        /// Folder to write the manifests to (created if missing; existing files are never overwritten).
        #[arg(long, default_value = "./catalog-import")]
        out: PathBuf,
        /// server.json files, or registry API answers ({"server": …} or {"servers": [ … ]}).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Make a new data key active and re-encrypt every secret under it: prints {"key_id","rewrapped"}.
    Rotate,
}

/// Dependencies whose debug and trace output can carry wire data (request paths with query strings, header frames,
/// TLS records): they are held at `info` whatever `RUST_LOG` says, so no level of logging shows a secret that travels
/// in an outbound request.
const WIRE_LEVEL_CAPS: &str =
    "h2=info,hyper=info,hyper_util=info,reqwest=info,rustls=info,tokio_postgres=info,postgres_protocol=info";

fn init_logging(format: LogFormat, default_level: &str) {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default_level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{base},{WIRE_LEVEL_CAPS}"))
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default_level},{WIRE_LEVEL_CAPS}"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.config.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plugboard: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve));
    init_logging(config.log_format, if serving { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plugboard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, cli.command.unwrap_or(Command::Serve))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plugboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

async fn open_store(config: &Config) -> Result<std::sync::Arc<dyn Store>> {
    let store = plugboard_store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                config.redacted_database_url()
            )
        })?;
    store.migrate().await.context("database migration failed")?;
    Ok(store)
}

fn check_text(what: &str, value: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        bail!("{what} must not be empty");
    }
    if v.chars().count() > max {
        bail!("{what} must be at most {max} characters");
    }
    if v.chars().any(char::is_control) {
        bail!("{what} must not contain control characters");
    }
    Ok(v.to_string())
}

fn check_email(email: &str) -> Result<String> {
    let e = check_text("--email", email, 254)?;
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace) =>
        {
            Ok(e)
        }
        _ => bail!("--email `{e}` is not an email address (expected name@example.com)"),
    }
}

async fn run(config: Config, command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve => {
            tracing::info!(settings = %config.summary(), "starting plugboard");
            let state = App::build(config).await?;
            let app = Application::bind(state).await?;
            app.run_until(shutdown_signal())
                .await
                .context("server error")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let store = plugboard_store::connect(&config.database_url)
                .await
                .with_context(|| {
                    format!(
                        "cannot open the database {}",
                        config.redacted_database_url()
                    )
                })?;
            let applied = store.migrate().await.context("database migration failed")?;
            print(json!({ "applied": applied }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            command: CatalogCommand::Lint { paths },
        } => {
            let report = plugboard_catalog::lint_paths(&paths);
            print(serde_json::to_value(&report)?);
            Ok(if report.invalid.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Catalog {
            command: CatalogCommand::ImportRegistry { out, files },
        } => {
            print(import_registry(&out, &files)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault {
            command: VaultCommand::Rotate,
        } => {
            let master = resolve_master_key(&config)?;
            let store = open_store(&config).await?;
            let (key_id, rewrapped) = rotate(store, &master).await?;
            print(json!({ "key_id": key_id, "rewrapped": rewrapped }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { command } => {
            let store = open_store(&config).await?;
            admin(store.as_ref(), &config, command).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Converts registry entries into `out`, one file per server; a file that cannot be read, an entry that cannot be
/// converted and a file that already exists are reported in `skipped`.
fn import_registry(out: &std::path::Path, files: &[PathBuf]) -> Result<serde_json::Value> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the folder {}", out.display()))?;
    let mut written = 0usize;
    let mut skipped = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for file in files {
        let shown = file.display().to_string();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                skipped
                    .push(json!({"name": shown, "reason": format!("cannot read the file: {e}")}));
                continue;
            }
        };
        for result in plugboard_catalog::convert_registry_document(&shown, &text) {
            match result {
                Err(s) => skipped.push(json!({"name": s.name, "reason": s.reason})),
                Ok(c) if !ids.insert(c.id.clone()) => skipped.push(json!({
                    "name": c.id,
                    "reason": "another entry of this import already became this id",
                })),
                Ok(c) => {
                    let path = out.join(&c.file_name);
                    let created = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .and_then(|mut f| std::io::Write::write_all(&mut f, c.yaml.as_bytes()));
                    match created {
                        Ok(()) => written += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => skipped.push(json!({
                            "name": c.id,
                            "reason": format!("{} already exists (remove it to import again)", path.display()),
                        })),
                        Err(e) => {
                            let _ = std::fs::remove_file(&path);
                            skipped.push(json!({"name": c.id, "reason": format!("cannot write {}: {e}", path.display())}));
                        }
                    }
                }
            }
        }
    }
    Ok(json!({"written": written, "skipped": skipped}))
}

/// A user id given on the command line: it must have the shape of one, and name a user.
async fn existing_user(store: &dyn Store, option: &str, raw: &str) -> Result<UserId> {
    let id = UserId::parse(raw.trim()).ok_or_else(|| {
        anyhow::anyhow!(
            "{option} `{}` is not a user id (24 lowercase letters and digits): see `plugboard admin user list`",
            raw.trim()
        )
    })?;
    if store.get_user(&id).await?.is_none() {
        bail!("no user with id `{id}`: see `plugboard admin user list`");
    }
    Ok(id)
}

async fn admin(store: &dyn Store, config: &Config, command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::LoginLink { user } => {
            let user = existing_user(store, "--user", &user).await?;
            let link = plugboard_server::people::create_sign_in_link(
                store,
                &config.public_url,
                &user,
                plugboard_store::now_ms(),
            )
            .await?;
            print(json!({ "url": link.url, "expires_at": link.expires_at }));
        }
        AdminCommand::User {
            command: UserCommand::List,
        } => {
            let items: Vec<serde_json::Value> = store
                .list_users()
                .await?
                .into_iter()
                .map(|u| json!({"id": u.id, "email": u.email, "name": u.name, "created_at": u.created_at}))
                .collect();
            print(json!({ "items": items }));
        }
        AdminCommand::User {
            command: UserCommand::Remove { id },
        } => {
            let user = existing_user(store, "--id", &id).await?;
            let audit = plugboard_store::NewAudit {
                workspace_id: None,
                actor_id: None,
                action: "user_removed".into(),
                target: Some(user.to_string()),
                detail: json!({"by": "operator"}),
            };
            match store.remove_user(&user, audit).await? {
                UserRemoval::Removed => print(json!({ "id": user, "removed": true })),
                UserRemoval::NotFound => bail!("no user with id `{user}`: see `plugboard admin user list`"),
                UserRemoval::LastOwner(ws) => bail!(
                    "user `{user}` is the only OWNER of workspace `{ws}`: make another member OWNER first \
                     (admin member add --workspace {ws} --user … --role OWNER), or delete the workspace"
                ),
                UserRemoval::CreatedIntegrations(n) => bail!(
                    "user `{user}` installed {n} integration(s) that still exist (they name who installed them): \
                     delete those integrations first, then remove the user"
                ),
            }
        }
        AdminCommand::Workspace {
            command: WorkspaceCommand::List,
        } => {
            let mut items = Vec::new();
            for w in store.list_workspaces().await? {
                let members = store.list_members(&w.id).await?.len();
                items.push(json!({"id": w.id, "name": w.name, "created_at": w.created_at, "members": members}));
            }
            print(json!({ "items": items }));
        }
        AdminCommand::Token {
            command: TokenCommand::List { user },
        } => {
            let user = existing_user(store, "--user", &user).await?;
            let items: Vec<serde_json::Value> = store
                .list_tokens(&user, true)
                .await?
                .into_iter()
                .map(|t| {
                    json!({"id": t.id, "name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at,
                           "expires_at": t.expires_at, "revoked_at": t.revoked_at})
                })
                .collect();
            print(json!({ "items": items }));
        }
        AdminCommand::User {
            command: UserCommand::Create { email, name },
        } => {
            let email = check_email(&email)?;
            let name = match name {
                Some(n) => check_text("--name", &n, 200)?,
                None => email.split('@').next().unwrap_or_default().to_string(),
            };
            let user = store.create_user(&email, &name).await?;
            print(json!({ "id": user.id }));
        }
        AdminCommand::Workspace {
            command: WorkspaceCommand::Create { name, owner },
        } => {
            let name = check_text("--name", &name, 200)?;
            let ws = store
                .create_workspace(&name, &UserId::from(owner.trim()))
                .await
                .map_err(|e| match e {
                    plugboard_store::StoreError::NotFound(_) => {
                        anyhow::anyhow!("no user with id `{}`", owner.trim())
                    }
                    other => other.into(),
                })?;
            print(json!({ "id": ws.id }));
        }
        AdminCommand::Member {
            command:
                MemberCommand::Add {
                    workspace,
                    user,
                    role,
                },
        } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let m = store
                .add_member(
                    &WorkspaceId::from(workspace.trim()),
                    &UserId::from(user.trim()),
                    role,
                )
                .await?;
            print(
                json!({ "workspace_id": m.workspace_id, "user_id": m.user_id, "role": m.role.as_str() }),
            );
        }
        AdminCommand::Crew {
            command: CrewCommand::Create { workspace, name },
        } => {
            let name = check_text("--name", &name, 200)?;
            let crew = store
                .create_crew(&WorkspaceId::from(workspace.trim()), &name)
                .await?;
            print(json!({ "id": crew.id }));
        }
        AdminCommand::Token {
            command: TokenCommand::Create { user, name },
        } => {
            let name = match name {
                Some(n) => check_text("--name", &n, 200)?,
                None => "api".to_string(),
            };
            let (token, hash) = generate_token();
            let rec = store
                .create_token(&UserId::from(user.trim()), &name, &hash)
                .await
                .map_err(|e| match e {
                    plugboard_store::StoreError::NotFound(_) => {
                        anyhow::anyhow!("no user with id `{}`", user.trim())
                    }
                    other => other.into(),
                })?;
            print(json!({ "id": rec.id, "token": token }));
        }
        AdminCommand::Token {
            command: TokenCommand::Revoke { id },
        } => {
            let rec = store
                .revoke_token(&TokenId::from(id.trim()))
                .await
                .map_err(|e| match e {
                    plugboard_store::StoreError::NotFound(_) => {
                        anyhow::anyhow!("no token with id `{}`", id.trim())
                    }
                    other => other.into(),
                })?;
            print(json!({ "id": rec.id, "revoked": true }));
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
