//! People: sessions, sign-in links, token use, and the management of users, workspaces, members, crews and tokens.

use super::*;

/// A member row: user id, email, name, role (as stored).
type MemberRow = (UserId, String, String, String);

fn member(row: MemberRow) -> Option<Member> {
    let (user_id, email, name, role) = row;
    // An unparseable role cannot be written (CHECK constraint); such a row is skipped.
    Some(Member {
        user_id,
        email,
        name,
        role: role.parse().ok()?,
    })
}

const MEMBER_SELECT: &str =
    "SELECT u.id, u.email, u.name, m.role FROM memberships m JOIN users u ON u.id = m.user_id";

for_both_backends! {
    impl PeopleStore {
        async fn credential_generation(&self) -> Result<i64> {
            let (n,): (i64,) = sqlx::query_as("SELECT value FROM credential_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
            Ok(n)
        }

        async fn create_session(
            &self,
            session: &NewSession,
            replaces: Option<&[u8]>,
            idle_before: i64,
            audit: Option<NewAudit>,
        ) -> Result<()> {
            let mut tx = begin!(self);
            if let Some(old) = replaces {
                let done = sqlx::query("DELETE FROM sessions WHERE secret_hash = $1")
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() > 0 {
                    bump_generation!(&mut *tx);
                }
            }
            // Sessions that ended by time are refused already; this only keeps the table small.
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_used_at <= $2")
                .bind(session.created_at)
                .bind(idle_before)
                .execute(&mut *tx)
                .await?;
            // Spent and expired links are kept a day, so that opening one again can say what happened.
            sqlx::query("DELETE FROM sign_in_links WHERE expires_at <= $1")
                .bind(session.created_at.saturating_sub(24 * 3600 * 1000))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_used_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&session.id)
            .bind(&session.secret_hash)
            .bind(&session.user_id)
            .bind(session.created_at)
            .bind(session.created_at)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "the session"))?;
            if let Some(a) = &audit {
                insert_audit!(&mut *tx, a);
            }
            commit!(tx);
            Ok(())
        }

        async fn session_by_hash(&self, secret_hash: &[u8]) -> Result<Option<SessionRecord>> {
            Ok(sqlx::query_as::<_, SessionRecord>(
                "SELECT id, user_id, created_at, last_used_at, expires_at FROM sessions WHERE secret_hash = $1",
            )
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn touch_session(&self, id: &SessionId, now: i64, min_interval_ms: i64) -> Result<bool> {
            let done = sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2 AND last_used_at <= $3")
                .bind(now)
                .bind(id)
                .bind(now.saturating_sub(min_interval_ms))
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn end_session(&self, secret_hash: &[u8], audit: Option<NewAudit>) -> Result<bool> {
            let mut tx = begin!(self);
            let done = sqlx::query("DELETE FROM sessions WHERE secret_hash = $1")
                .bind(secret_hash)
                .execute(&mut *tx)
                .await?;
            let ended = done.rows_affected() > 0;
            if ended {
                bump_generation!(&mut *tx);
                if let Some(a) = &audit {
                    insert_audit!(&mut *tx, a);
                }
            }
            commit!(tx);
            Ok(ended)
        }

        async fn create_sign_in_link(
            &self,
            secret_hash: &[u8],
            user_id: &UserId,
            created_at: i64,
            expires_at: i64,
        ) -> Result<()> {
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", user_id, "user");
            sqlx::query(
                "INSERT INTO sign_in_links (secret_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(secret_hash)
            .bind(user_id)
            .bind(created_at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "a sign-in link with this secret"))?;
            commit!(tx);
            Ok(())
        }

        async fn use_sign_in_link(&self, secret_hash: &[u8], now: i64) -> Result<LinkUse> {
            // One statement spends it: two browsers opening the same link cannot both get a session.
            let spent: Option<(UserId,)> = sqlx::query_as(
                "UPDATE sign_in_links SET used_at = $1 \
                 WHERE secret_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
            )
            .bind(now)
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((user_id,)) = spent {
                return Ok(LinkUse::SignIn(user_id));
            }
            let row: Option<(Option<i64>,)> =
                sqlx::query_as("SELECT used_at FROM sign_in_links WHERE secret_hash = $1")
                    .bind(secret_hash)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(match row {
                None => LinkUse::Unknown,
                Some((Some(_),)) => LinkUse::AlreadyUsed,
                Some((None,)) => LinkUse::Expired,
            })
        }

        async fn touch_token(&self, id: &TokenId, now: i64, min_interval_ms: i64) -> Result<bool> {
            let done = sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
            )
            .bind(now)
            .bind(id)
            .bind(now.saturating_sub(min_interval_ms))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
            Ok(sqlx::query_as::<_, User>("SELECT id, email, name, created_at FROM users WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn find_or_create_user(&self, email: &str, name: &str) -> Result<(User, bool)> {
            let email = email.trim().to_lowercase();
            let done = sqlx::query(
                "INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(UserId::generate())
            .bind(&email)
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
            let user = sqlx::query_as::<_, User>("SELECT id, email, name, created_at FROM users WHERE email = $1")
                .bind(&email)
                .fetch_one(&self.pool)
                .await?;
            Ok((user, done.rows_affected() > 0))
        }

        async fn list_users(&self) -> Result<Vec<User>> {
            Ok(sqlx::query_as::<_, User>("SELECT id, email, name, created_at FROM users ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?)
        }

        async fn remove_user(&self, id: &UserId, audit: NewAudit) -> Result<UserRemoval> {
            let mut tx = begin!(self);
            if !lock_row!(&mut *tx, "users", id) {
                return Ok(UserRemoval::NotFound);
            }
            // Lock the workspaces this user owns (in one order), so no concurrent change removes their other OWNER.
            let owned: Vec<(WorkspaceId,)> = sqlx::query_as(
                "SELECT workspace_id FROM memberships WHERE user_id = $1 AND role = 'OWNER' ORDER BY workspace_id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for (ws,) in &owned {
                lock_row!(&mut *tx, "workspaces", ws);
            }
            let sole: Option<(WorkspaceId,)> = sqlx::query_as(
                "SELECT m.workspace_id FROM memberships m WHERE m.user_id = $1 AND m.role = 'OWNER' \
                 AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.workspace_id = m.workspace_id \
                 AND o.role = 'OWNER' AND o.user_id <> $1) ORDER BY m.workspace_id LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((ws,)) = sole {
                return Ok(UserRemoval::LastOwner(ws));
            }
            let (installed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM integrations WHERE created_by = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if installed > 0 {
                return Ok(UserRemoval::CreatedIntegrations(installed));
            }
            for sql in [
                "DELETE FROM sessions WHERE user_id = $1",
                "DELETE FROM sign_in_links WHERE user_id = $1",
                "DELETE FROM api_tokens WHERE user_id = $1",
                "DELETE FROM memberships WHERE user_id = $1",
                "DELETE FROM idempotency_keys WHERE user_id = $1",
                "DELETE FROM users WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            bump_generation!(&mut *tx);
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(UserRemoval::Removed)
        }

        async fn insert_workspace(&self, workspace: &Workspace, owner: &UserId, audit: NewAudit) -> Result<()> {
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", owner, "user");
            sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&workspace.id)
                .bind(&workspace.name)
                .bind(workspace.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "the workspace"))?;
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&workspace.id)
            .bind(owner)
            .bind(Role::Owner.as_str())
            .bind(workspace.created_at)
            .execute(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(())
        }

        async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
            Ok(sqlx::query_as::<_, Workspace>("SELECT id, name, created_at FROM workspaces ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?)
        }

        async fn user_workspaces(&self, user_id: &UserId) -> Result<Vec<WorkspaceRole>> {
            let rows: Vec<(WorkspaceId, String, String)> = sqlx::query_as(
                "SELECT w.id, w.name, m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id \
                 WHERE m.user_id = $1 ORDER BY w.created_at, w.id",
            )
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, name, role)| Some(WorkspaceRole { id, name, role: role.parse().ok()? }))
                .collect())
        }

        async fn rename_workspace(&self, id: &WorkspaceId, name: &str, audit: NewAudit) -> Result<Option<Workspace>> {
            let mut tx = begin!(self);
            let done = sqlx::query("UPDATE workspaces SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            insert_audit!(&mut *tx, &audit);
            let ws = sqlx::query_as::<_, Workspace>("SELECT id, name, created_at FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            commit!(tx);
            Ok(Some(ws))
        }

        async fn delete_workspace(&self, id: &WorkspaceId, audit: NewAudit) -> Result<bool> {
            let mut tx = begin!(self);
            if !lock_row!(&mut *tx, "workspaces", id) {
                return Ok(false);
            }
            // Explicit deletes rather than trusting the cascades alone: the vault entries must be gone.
            for sql in [
                "DELETE FROM secrets WHERE integration_id IN (SELECT id FROM integrations WHERE workspace_id = $1)",
                "DELETE FROM oauth_states WHERE integration_id IN (SELECT id FROM integrations WHERE workspace_id = $1)",
                "DELETE FROM integrations WHERE workspace_id = $1",
                "DELETE FROM agent_tokens WHERE workspace_id = $1",
                "DELETE FROM crews WHERE workspace_id = $1",
                "DELETE FROM memberships WHERE workspace_id = $1",
                "DELETE FROM idempotency_keys WHERE workspace_id = $1",
                "DELETE FROM workspaces WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            // Its agent tokens went with it.
            bump_generation!(&mut *tx);
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(true)
        }

        async fn list_members(&self, workspace_id: &WorkspaceId) -> Result<Vec<Member>> {
            let rows: Vec<MemberRow> = sqlx::query_as(&format!(
                "{MEMBER_SELECT} WHERE m.workspace_id = $1 ORDER BY u.email"
            ))
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().filter_map(member).collect())
        }

        async fn add_member_by_email(
            &self,
            workspace_id: &WorkspaceId,
            email: &str,
            name: &str,
            role: Role,
            audit: NewAudit,
        ) -> Result<MemberAdded> {
            let mut audit = audit;
            let email = email.trim().to_lowercase();
            let mut tx = begin!(self);
            if !lock_row!(&mut *tx, "workspaces", workspace_id) {
                return Ok(MemberAdded::NoWorkspace);
            }
            let created = sqlx::query(
                "INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(UserId::generate())
            .bind(&email)
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            let user = sqlx::query_as::<_, User>("SELECT id, email, name, created_at FROM users WHERE email = $1")
                .bind(&email)
                .fetch_one(&mut *tx)
                .await?;
            let existing: Option<MemberRow> = sqlx::query_as(&format!(
                "{MEMBER_SELECT} WHERE m.workspace_id = $1 AND m.user_id = $2"
            ))
            .bind(workspace_id)
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(m) = existing.and_then(member) {
                return Ok(MemberAdded::AlreadyMember(m));
            }
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(workspace_id)
            .bind(&user.id)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            audit.target = Some(user.id.to_string());
            if let Some(d) = audit.detail.as_object_mut() {
                d.insert("user_id".into(), serde_json::Value::String(user.id.to_string()));
            }
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(MemberAdded::Added {
                member: Member { user_id: user.id, email: user.email, name: user.name, role },
                user_created: created,
            })
        }

        async fn get_member(&self, workspace_id: &WorkspaceId, user_id: &UserId) -> Result<Option<Member>> {
            let row: Option<MemberRow> = sqlx::query_as(&format!(
                "{MEMBER_SELECT} WHERE m.workspace_id = $1 AND m.user_id = $2"
            ))
            .bind(workspace_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.and_then(member))
        }

        async fn change_member_role(
            &self,
            workspace_id: &WorkspaceId,
            user_id: &UserId,
            from: Role,
            to: Role,
            audit: NewAudit,
        ) -> Result<MemberChange> {
            let mut tx = begin!(self);
            if !lock_row!(&mut *tx, "workspaces", workspace_id) {
                return Ok(MemberChange::NotMember);
            }
            let current: Option<(String,)> =
                sqlx::query_as("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(workspace_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(current) = current.and_then(|(r,)| r.parse::<Role>().ok()) else {
                return Ok(MemberChange::NotMember);
            };
            if current != from {
                return Ok(MemberChange::RoleChanged(current));
            }
            if from == Role::Owner && to != Role::Owner {
                let (owners,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'OWNER'",
                )
                .bind(workspace_id)
                .fetch_one(&mut *tx)
                .await?;
                if owners <= 1 {
                    return Ok(MemberChange::LastOwner);
                }
            }
            sqlx::query("UPDATE memberships SET role = $1 WHERE workspace_id = $2 AND user_id = $3")
                .bind(to.as_str())
                .bind(workspace_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(MemberChange::Done)
        }

        async fn remove_member(
            &self,
            workspace_id: &WorkspaceId,
            user_id: &UserId,
            from: Role,
            audit: NewAudit,
        ) -> Result<MemberChange> {
            let mut tx = begin!(self);
            if !lock_row!(&mut *tx, "workspaces", workspace_id) {
                return Ok(MemberChange::NotMember);
            }
            let current: Option<(String,)> =
                sqlx::query_as("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(workspace_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(current) = current.and_then(|(r,)| r.parse::<Role>().ok()) else {
                return Ok(MemberChange::NotMember);
            };
            if current != from {
                return Ok(MemberChange::RoleChanged(current));
            }
            if from == Role::Owner {
                let (owners,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM memberships WHERE workspace_id = $1 AND role = 'OWNER'",
                )
                .bind(workspace_id)
                .fetch_one(&mut *tx)
                .await?;
                if owners <= 1 {
                    return Ok(MemberChange::LastOwner);
                }
            }
            sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(MemberChange::Done)
        }

        async fn list_crews(&self, workspace_id: &WorkspaceId) -> Result<Vec<Crew>> {
            Ok(sqlx::query_as::<_, Crew>(
                "SELECT id, workspace_id, name, created_at FROM crews WHERE workspace_id = $1 ORDER BY created_at, id",
            )
            .bind(workspace_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn insert_crew(&self, crew: &Crew, audit: NewAudit) -> Result<()> {
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM workspaces WHERE id = $1", &crew.workspace_id, "workspace");
            sqlx::query("INSERT INTO crews (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&crew.id)
                .bind(&crew.workspace_id)
                .bind(&crew.name)
                .bind(crew.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_err(e, "the crew"))?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(())
        }

        async fn rename_crew(&self, id: &CrewId, name: &str, audit: NewAudit) -> Result<Option<Crew>> {
            let mut tx = begin!(self);
            let done = sqlx::query("UPDATE crews SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            insert_audit!(&mut *tx, &audit);
            let crew = sqlx::query_as::<_, Crew>("SELECT id, workspace_id, name, created_at FROM crews WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            commit!(tx);
            Ok(Some(crew))
        }

        async fn delete_crew(&self, id: &CrewId, audit: NewAudit) -> Result<CrewDeletion> {
            let mut tx = begin!(self);
            // The lock makes a concurrent install for this crew wait (its foreign key check) or be counted here.
            if !lock_row!(&mut *tx, "crews", id) {
                return Ok(CrewDeletion::NotFound);
            }
            let (installed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM integrations WHERE crew_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if installed > 0 {
                return Ok(CrewDeletion::InUse(installed));
            }
            // The crew's agent tokens go with it: a revocation, so cached copies are dropped everywhere.
            let tokens = sqlx::query("DELETE FROM agent_tokens WHERE crew_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if tokens.rows_affected() > 0 {
                bump_generation!(&mut *tx);
            }
            sqlx::query("DELETE FROM crews WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(CrewDeletion::Deleted)
        }

        async fn create_personal_token(&self, token: &NewToken, audit: NewAudit) -> Result<TokenRecord> {
            let rec = TokenRecord {
                id: TokenId::generate(),
                user_id: token.user_id.clone(),
                name: token.name.clone(),
                created_at: token.created_at,
                revoked_at: None,
                expires_at: token.expires_at,
                last_used_at: None,
            };
            let mut audit = audit;
            audit.target = Some(rec.id.to_string());
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", &token.user_id, "user");
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&rec.id)
            .bind(&rec.user_id)
            .bind(&rec.name)
            .bind(&token.token_hash)
            .bind(rec.created_at)
            .bind(rec.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "a token with this hash"))?;
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(rec)
        }

        async fn list_tokens(&self, user_id: &UserId, include_revoked: bool) -> Result<Vec<TokenRecord>> {
            let filter = if include_revoked { "" } else { " AND revoked_at IS NULL" };
            Ok(sqlx::query_as::<_, TokenRecord>(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1{filter} ORDER BY created_at, id"
            ))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn revoke_own_token(&self, id: &TokenId, user_id: &UserId, audit: NewAudit) -> Result<bool> {
            let mut tx = begin!(self);
            let done = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            bump_generation!(&mut *tx);
            insert_audit!(&mut *tx, &audit);
            commit!(tx);
            Ok(true)
        }
    }
}
