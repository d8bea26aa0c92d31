//! `plugboard`: the service and its operator commands. Each operator command prints exactly one JSON object on
//! stdout and exits 0, or prints a clear message on stderr and exits non-zero. Logs always go to stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use plugboard_server::auth::generate_token;
use plugboard_server::config::ConfigError;
use plugboard_server::vault::{resolve_master_key, rotate};
use plugboard_server::{Config, ConfigArgs, DatabaseArgs, LogFormat, MasterKeyArgs};
use plugboard_store::{ExistingDbError, Role, Store, TokenId, UserId, UserRemoval, WorkspaceId};

/// mimalloc instead of glibc's allocator: the MCP gateway's relay allocates and frees many small buffers per call,
/// and glibc's malloc and free took about 13% of its CPU; with mimalloc the relay spends about 8% less CPU per call
/// (an A/B of one commit in one run, recorded in BENCHMARKS-gateway.md). Built without transparent huge pages
/// (feature `no_thp`): with them, resident memory at start and per held gateway session grew by a third to a half;
/// without, a held session costs what it did with glibc, and a 10,000-manifest catalog about 6 MiB more (README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "plugboard",
    version,
    about = "MCP connector catalog and credential vault",
    long_about = "MCP connector catalog and credential vault: one binary, the server and its operator commands.\n\n\
                  Run without a command to serve (the same as `plugboard serve`, configured by environment \
                  variables). The operator commands work on the server's database and print one JSON object on \
                  stdout, or a message on stderr and a non-zero exit code.",
    after_help = "Every option can also be set by the environment variable shown in the command's --help \
                  (e.g. PLUGBOARD_DATA_DIR). Run `plugboard COMMAND --help` for a command's options."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default); creates and migrates the database when needed
    Serve(Box<ConfigArgs>),
    /// Create the database if it does not exist and apply pending migrations: prints {"applied"}
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage users, workspaces, members, crews and API tokens in the server's database
    Admin {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Check catalog manifests
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Manage the credential vault's keys
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
    /// Copy the SQLite database to a new file while the server runs: prints {"path","bytes"}
    #[command(
        long_about = "Copy the SQLite database to a new file while the server runs: prints {\"path\",\"bytes\"}.\n\n\
                      The copy is consistent (one moment's state, every write committed before it began), made \
                      private to you (mode 0600) and checked before the command reports it. An existing file is \
                      never overwritten. The master key is not in the copy: keep master.key (or your \
                      PLUGBOARD_MASTER_KEY) backed up separately, the copy's secrets cannot be read without it. \
                      To restore, stop the server, move every DIR/plugboard.db* file aside (a stale \
                      plugboard.db-wal would be replayed into the restored file), copy the backup to \
                      DIR/plugboard.db and start the server with the same master key.\n\n\
                      For PostgreSQL use pg_dump."
    )]
    Backup {
        /// The file to write (must not exist; its folder must)
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create users (people who sign in and own tokens)
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Create workspaces (what integrations are installed for)
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Add users to workspaces with a role
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Create crews (groups inside a workspace that integrations can be installed for)
    Crew {
        #[command(subcommand)]
        command: CrewCommand,
    },
    /// Create and revoke API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Make a single-use sign-in link for a user, valid 15 minutes: prints {"url","expires_at"}
    LoginLink {
        /// Id of the user who signs in (see `admin user list`)
        #[arg(long, value_name = "USER_ID")]
        user: String,
        /// The server's externally visible base URL, which the link starts with [default: http://<listen>]
        #[arg(long, env = "PLUGBOARD_PUBLIC_URL", value_name = "URL")]
        public_url: Option<String>,
        /// The server's listen address, used for the link when no public URL is set
        #[arg(
            long,
            env = "PLUGBOARD_LISTEN",
            default_value = "127.0.0.1:8080",
            value_name = "ADDR"
        )]
        listen: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user: prints {"id"}
    Create {
        /// The user's email address (unique), e.g. ada@example.com
        #[arg(long, value_name = "EMAIL")]
        email: String,
        /// Display name [default: the part of the email before @]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// List every user: prints {"items":[{"id","email","name","created_at"}]}
    List,
    /// Remove a user with their sessions, sign-in links, tokens and memberships: prints {"id","removed":true}
    Remove {
        /// The user's id (see `admin user list`)
        #[arg(long, value_name = "USER_ID")]
        id: String,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace owned by a user (its first OWNER member): prints {"id"}
    Create {
        /// The workspace's name, e.g. Acme
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Id of the user who owns it (from `admin user create`)
        #[arg(long, value_name = "USER_ID")]
        owner: String,
    },
    /// List every workspace: prints {"items":[{"id","name","created_at","members"}]}
    List,
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a user to a workspace, or change a member's role: prints {"workspace_id","user_id","role"}
    Add {
        /// Id of the workspace (from `admin workspace create`)
        #[arg(long, value_name = "WORKSPACE_ID")]
        workspace: String,
        /// Id of the user to add (from `admin user create`)
        #[arg(long, value_name = "USER_ID")]
        user: String,
        /// The member's role: VIEWER, MEMBER, MANAGER, ADMIN or OWNER (MANAGER and above verify and install; ADMIN
        /// and above read runtime credentials and the audit log)
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
}

#[derive(Subcommand)]
enum CrewCommand {
    /// Create a crew in a workspace: prints {"id"}
    Create {
        /// Id of the workspace the crew belongs to
        #[arg(long, value_name = "WORKSPACE_ID")]
        workspace: String,
        /// The crew's name, e.g. Support
        #[arg(long, value_name = "NAME")]
        name: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user: prints {"id","token"}; the token is shown this once only
    Create {
        /// Id of the user the token acts as
        #[arg(long, value_name = "USER_ID")]
        user: String,
        /// A label to recognise the token by, e.g. laptop [default: api]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Revoke an API token (it stops working within a second): prints {"id","revoked":true}
    Revoke {
        /// Id of the token (the "id" printed by `admin token create`, not the token itself)
        #[arg(long, value_name = "TOKEN_ID")]
        id: String,
    },
    /// List a user's API tokens, revoked ones included (never a token itself): prints {"items":[{"id","name",
    /// "created_at","last_used_at","expires_at","revoked_at"}]}
    List {
        /// The user's id (see `admin user list`)
        #[arg(long, value_name = "USER_ID")]
        user: String,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Validate manifest files or folders: prints {"valid","invalid":[{"file","error"}]}; exit 0 only if all valid
    Lint {
        /// Manifest files (*.yaml, *.yml, *.json) or folders of them
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Convert MCP Registry server.json entries into manifests: prints {"written","skipped":[{"name","reason"}]}
    ImportRegistry {
        /// Folder to write the manifests to (created if missing; existing files are never overwritten)
        #[arg(long, default_value = "./catalog-import", value_name = "DIR")]
        out: PathBuf,
        /// server.json files, or registry API answers ({"server": …} or {"servers": [ … ]})
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Make a new data key active and re-encrypt every secret under it, while servers run: prints {"key_id","rewrapped"}
    #[command(
        long_about = "Make a new data key active and re-encrypt every secret under it, while servers run: prints \
                      {\"key_id\",\"rewrapped\"}.\n\n\
                      One rotation runs at a time across every process and instance: a second one waits for the \
                      running one (saying so on stderr) and then finishes its work rather than rotating again. \
                      The master key itself does not change."
    )]
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: MasterKeyArgs,
    },
}

/// Dependencies whose debug and trace output can carry wire data (request paths with query strings, header frames,
/// TLS records): they are held at `info` whatever `RUST_LOG` says, so no level of logging shows a secret that travels
/// in an outbound request.
const WIRE_LEVEL_CAPS: &str =
    "h2=info,hyper=info,hyper_util=info,reqwest=info,rustls=info,tokio_postgres=info,postgres_protocol=info";

/// Logs go to stderr, coloured only when stderr is a terminal (and `NO_COLOR` is unset): a log file or a pipe
/// gets plain text.
fn init_logging(format: LogFormat, default_level: &str) {
    let base = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default_level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{base},{WIRE_LEVEL_CAPS}"))
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default_level},{WIRE_LEVEL_CAPS}"))
        });
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Some(command) => command,
        // No command: serve, configured by the environment.
        None => match Cli::parse_from(["plugboard", "serve"]).command {
            Some(command) => command,
            None => return ExitCode::FAILURE,
        },
    };
    match &command {
        Command::Serve(args) => match args.clone().into_config() {
            Ok(config) => init_logging(config.log_format, "info"),
            Err(e) => return configuration_error(&e),
        },
        // Operator commands log warnings only; their format follows PLUGBOARD_LOG_FORMAT when it is valid.
        _ => init_logging(
            match std::env::var("PLUGBOARD_LOG_FORMAT")
                .ok()
                .as_deref()
                .map(str::trim)
            {
                Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
                _ => LogFormat::Pretty,
            },
            "warn",
        ),
    }
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
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<ConfigError>() {
            Some(config) => configuration_error(config),
            None => {
                eprintln!("plugboard: {}", describe(&e));
                ExitCode::FAILURE
            }
        },
    }
}

fn configuration_error(e: &ConfigError) -> ExitCode {
    eprintln!("plugboard: configuration error: {e}");
    ExitCode::from(2)
}

/// An error and its causes on one line, each cause once (a message that already quotes its cause is not followed
/// by it again).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

/// The settings of an operator command: where its database is and, for vault commands, the master key.
fn settings(database: DatabaseArgs, key: Option<MasterKeyArgs>) -> Result<Config> {
    Ok(ConfigArgs::for_command(database, key).into_config()?)
}

/// Opens the server's database for an operator command: it must exist and be migrated, so that a command run with
/// the wrong settings (another folder, another URL) fails here instead of writing into a new, empty database.
async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let shown = config.redacted_database_url();
    let point_at_it = "Operator commands work on the server's database and never create one: run the command from \
                       the folder the server runs in, or give it the server's settings with --data-dir (or \
                       PLUGBOARD_DATA_DIR, the folder holding plugboard.db) or --database-url (or \
                       PLUGBOARD_DATABASE_URL).";
    plugboard_store::open_existing(&config.database_url)
        .await
        .map_err(|e| match e {
            ExistingDbError::Missing(path) => anyhow::anyhow!(
                "no database at {}. {point_at_it} To start a new database, run `plugboard migrate` (or \
                 `plugboard serve`).",
                absolute(&path).display()
            ),
            ExistingDbError::Empty => anyhow::anyhow!(
                "the database {shown} has no Plugboard tables, so it is not the server's database. \
                 {point_at_it} To set up this database, run `plugboard migrate` first."
            ),
            ExistingDbError::Behind { missing, known } => anyhow::anyhow!(
                "the database {shown} lacks {missing} of this version's {known} migrations: this plugboard is \
                 newer than the database. Back the database up, then run `plugboard migrate` (or restart the \
                 server with this version: it migrates at start)."
            ),
            ExistingDbError::Ahead { unknown } => anyhow::anyhow!(
                "the database {shown} was migrated by a newer version of plugboard ({unknown} migration{} this \
                 version does not know): run this command with the server's version.",
                if unknown == 1 { "" } else { "s" }
            ),
            ExistingDbError::Store(e) => anyhow::Error::new(e).context(format!(
                "cannot open the database {shown} (is it running and reachable, and are the settings the server's?)"
            )),
        })
}

/// `path` as an absolute path (relative paths are relative to the current folder), for messages.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path.strip_prefix(".").unwrap_or(path)))
        .unwrap_or_else(|_| path.to_path_buf())
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

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let config = args.into_config()?;
            tracing::info!(settings = %config.summary(), "starting plugboard");
            plugboard_server::startup::serve(config, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { database } => {
            let config = settings(database, None)?;
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
            command: VaultCommand::Rotate { database, key },
        } => {
            let config = settings(database, Some(key))?;
            let store = open_store(&config).await?;
            let dev_key = config.data_dir.join("master.key");
            if config.is_sqlite()
                && config.master_key.is_none()
                && config.master_key_file.is_none()
                && !dev_key.exists()
            {
                // Only `serve` makes a development key; a new one could not open this database's keys anyway.
                bail!(
                    "no master key: PLUGBOARD_MASTER_KEY and PLUGBOARD_MASTER_KEY_FILE are unset and there is no \
                     {}. Give this command the key the server uses (--master-key-file, or the environment the \
                     server runs with).",
                    absolute(&dev_key).display()
                );
            }
            let master = resolve_master_key(&config)?;
            let (key_id, rewrapped) = rotate(store, &master).await?;
            print(json!({ "key_id": key_id, "rewrapped": rewrapped }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { path, database } => {
            let config = settings(database, None)?;
            if !config.is_sqlite() {
                bail!(
                    "`plugboard backup` copies SQLite databases; {} is PostgreSQL: back it up with pg_dump, e.g. \
                     `pg_dump --format=custom --file=plugboard.dump \"$PLUGBOARD_DATABASE_URL\"`, and restore \
                     with pg_restore (keep the master key too: the dump's secrets cannot be read without it)",
                    config.redacted_database_url()
                );
            }
            // The same checks as every operator command: the database must be the server's.
            drop(open_store(&config).await?);
            let backup = plugboard_store::backup_sqlite(&config.database_url, &path).await?;
            print(json!({ "path": absolute(&backup.path), "bytes": backup.bytes }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { database, command } => {
            let mut args = ConfigArgs::for_command(database, None);
            if let AdminCommand::LoginLink {
                public_url, listen, ..
            } = &command
            {
                // The link must start with the URL the server answers on.
                args.public_url = public_url.clone();
                args.listen = listen.clone();
            }
            let config = args.into_config()?;
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
        AdminCommand::LoginLink { user, .. } => {
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

/// The shutdown signal (SIGTERM or Ctrl-C). The handlers are installed now, before the server listens, so a signal
/// that arrives early still shuts down gracefully instead of killing the process with its connections.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
