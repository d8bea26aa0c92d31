//! Who may do what: the least role each action needs, one constant per action. The JSON API's handlers check these
//! with [`crate::auth::require_role`]; the console reads the same constants to show a control only to those who may
//! use it (and its pages check them again, through the same function).

use plugboard_store::Role;

/// Read a workspace's catalog, integrations, members and crews.
pub const VIEW: Role = Role::Viewer;
/// Verify credentials against a provider.
pub const VERIFY: Role = Role::Manager;
/// Install a connector, or describe a custom MCP server.
pub const INSTALL: Role = Role::Manager;
/// Rename, enable or disable, replace credentials, (re)connect and delete an integration.
pub const MANAGE_INTEGRATIONS: Role = Role::Manager;
/// Read an integration's materialised MCP block with its secrets (`/runtime`).
pub const READ_RUNTIME: Role = Role::Admin;
/// Read the audit log.
pub const READ_AUDIT: Role = Role::Admin;
/// List, create and revoke a workspace's agent tokens (the MCP gateway's credentials).
pub const MANAGE_AGENT_TOKENS: Role = Role::Admin;
