//! `--help` as a new operator reads it: every command and option says what it is, and each command shows only the
//! settings it uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_plugboard");

const COMMANDS: &[&str] = &[
    "",
    "serve",
    "migrate",
    "admin",
    "admin user",
    "admin user create",
    "admin workspace",
    "admin workspace create",
    "admin member",
    "admin member add",
    "admin crew",
    "admin crew create",
    "admin token",
    "admin token create",
    "admin token revoke",
    "catalog",
    "catalog lint",
    "vault",
    "vault rotate",
    "backup",
];

fn help(command: &str, flag: &str) -> String {
    let mut args: Vec<&str> = command.split_whitespace().collect();
    args.push(flag);
    let out = Command::new(BIN)
        .args(&args)
        .env_remove("PLUGBOARD_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{command} {flag} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The commands, arguments and options listed, each with its description: on the same line after two spaces, or
/// (clap's layout for long descriptions) alone on the next, more indented line.
fn entries(help: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let is_entry = indent(line) >= 2
            && (t.starts_with('-')
                || t.starts_with('<')
                || (indent(line) == 2 && t.chars().next().is_some_and(|c| c.is_ascii_lowercase())));
        if !is_entry {
            continue;
        }
        let description = match t.find("  ") {
            Some(gap) => t[gap..].trim().to_string(),
            None => lines
                .get(i + 1)
                .filter(|next| indent(next) > indent(line))
                .map(|next| next.trim().to_string())
                .unwrap_or_default(),
        };
        let name = t.split("  ").next().unwrap_or(t).to_string();
        out.push((name, description));
    }
    out
}

#[test]
fn every_command_and_option_has_a_one_line_description() {
    for command in COMMANDS {
        let text = help(command, "-h");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            !first.trim().is_empty() && !first.starts_with("Usage"),
            "`plugboard {command}` has no summary:\n{text}"
        );
        let listed = entries(&text);
        assert!(!listed.is_empty(), "{command}: nothing listed?\n{text}");
        for (name, description) in listed {
            assert!(
                !description.is_empty(),
                "`plugboard {command} -h`: no description for `{name}`\n{text}"
            );
        }
        // The long form reads too.
        assert!(help(command, "--help").contains("Usage: plugboard"));
    }
}

#[test]
fn each_command_shows_only_the_settings_it_uses() {
    let server_only = [
        "--listen",
        "--public-url",
        "--catalog-dir",
        "--egress-allow-cidrs",
        "--probe-timeout-ms",
        "--verify-rate-per-minute",
        "--log-format",
        "--sqlite-synchronous",
    ];
    let serve = help("serve", "-h");
    for flag in server_only.iter().chain(&[
        "--data-dir",
        "--database-url",
        "--master-key",
        "--master-key-file",
    ]) {
        assert!(serve.contains(flag), "serve lacks {flag}");
    }
    for env in [
        "PLUGBOARD_LISTEN",
        "PLUGBOARD_MASTER_KEY_FILE",
        "PLUGBOARD_SQLITE_SYNCHRONOUS",
    ] {
        assert!(serve.contains(env), "serve does not name {env}");
    }
    for command in COMMANDS.iter().filter(|c| !c.is_empty() && **c != "serve") {
        let text = help(command, "-h");
        for flag in server_only {
            assert!(
                !text.contains(flag),
                "`{command}` shows the server flag {flag}"
            );
        }
        let opens_the_vault = *command == "vault rotate";
        assert_eq!(
            text.contains("--master-key"),
            opens_the_vault,
            "`{command}`: the master key flags belong to vault commands only"
        );
        let opens_the_database = command.starts_with("admin ")
            || ["admin", "migrate", "vault rotate", "backup"].contains(command);
        assert_eq!(
            text.contains("--data-dir") && text.contains("--database-url"),
            opens_the_database,
            "`{command}`: database flags only where it opens the database"
        );
    }
    // The top level lists commands, not settings.
    assert!(!help("", "-h").contains("--data-dir"));
}

#[test]
fn options_say_what_they_take() {
    let member = help("admin member add", "-h");
    for role in ["VIEWER", "MEMBER", "MANAGER", "ADMIN", "OWNER"] {
        assert!(member.contains(role), "--role does not list {role}");
    }
    assert!(member.contains("--user <USER_ID>") && member.contains("--workspace <WORKSPACE_ID>"));
    assert!(help("admin user create", "-h").contains("email address"));
    assert!(help("admin token revoke", "-h").contains("not the token itself"));
    let backup = help("backup", "--help");
    assert!(
        backup.contains("pg_dump") && backup.contains("master key") && backup.contains("restore")
    );
}
