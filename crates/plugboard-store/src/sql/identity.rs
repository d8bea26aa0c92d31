//! Users, workspaces, memberships, crews and API tokens: who may do what.

use super::*;

for_both_backends! {
    impl IdentityStore {
        async fn create_user(&self, email: &str, name: &str) -> Result<User> {
            let user = User {
                id: UserId::generate(),
                email: email.trim().to_lowercase(),
                name: name.to_string(),
                created_at: now_ms(),
            };
            sqlx::query("INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&user.id)
                .bind(&user.email)
                .bind(&user.name)
                .bind(user.created_at)
                .execute(&self.pool)
                .await
                .map_err(|e| map_err(e, "a user with this email"))?;
            Ok(user)
        }

        async fn get_user(&self, id: &UserId) -> Result<Option<User>> {
            Ok(sqlx::query_as::<_, User>("SELECT id, email, name, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn create_workspace(&self, name: &str, owner_id: &UserId) -> Result<Workspace> {
            let ws = Workspace { id: WorkspaceId::generate(), name: name.to_string(), created_at: now_ms() };
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", owner_id, "user");
            sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&ws.id)
                .bind(&ws.name)
                .bind(ws.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&ws.id)
            .bind(owner_id)
            .bind(Role::Owner.as_str())
            .bind(ws.created_at)
            .execute(&mut *tx)
            .await?;
            commit!(tx);
            Ok(ws)
        }

        async fn get_workspace(&self, id: &WorkspaceId) -> Result<Option<Workspace>> {
            Ok(sqlx::query_as::<_, Workspace>("SELECT id, name, created_at FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn add_member(&self, workspace_id: &WorkspaceId, user_id: &UserId, role: Role) -> Result<Membership> {
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM workspaces WHERE id = $1", workspace_id, "workspace");
            require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", user_id, "user");
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
            )
            .bind(workspace_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            commit!(tx);
            Ok(Membership { workspace_id: workspace_id.clone(), user_id: user_id.clone(), role })
        }

        async fn member_role(&self, workspace_id: &WorkspaceId, user_id: &UserId) -> Result<Option<Role>> {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                    .bind(workspace_id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
            // An unparseable role cannot be written (CHECK constraint); treat it as no access.
            Ok(row.and_then(|(r,)| r.parse().ok()))
        }

        async fn create_crew(&self, workspace_id: &WorkspaceId, name: &str) -> Result<Crew> {
            let crew = Crew {
                id: CrewId::generate(),
                workspace_id: workspace_id.clone(),
                name: name.to_string(),
                created_at: now_ms(),
            };
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM workspaces WHERE id = $1", workspace_id, "workspace");
            sqlx::query("INSERT INTO crews (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&crew.id)
                .bind(&crew.workspace_id)
                .bind(&crew.name)
                .bind(crew.created_at)
                .execute(&mut *tx)
                .await?;
            commit!(tx);
            Ok(crew)
        }

        async fn get_crew(&self, id: &CrewId) -> Result<Option<Crew>> {
            Ok(sqlx::query_as::<_, Crew>("SELECT id, workspace_id, name, created_at FROM crews WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn create_token(&self, user_id: &UserId, name: &str, token_hash: &[u8]) -> Result<TokenRecord> {
            let rec = TokenRecord {
                id: TokenId::generate(),
                user_id: user_id.clone(),
                name: name.to_string(),
                created_at: now_ms(),
                revoked_at: None,
                expires_at: None,
                last_used_at: None,
            };
            let mut tx = begin!(self);
            require_exists!(&mut *tx, "SELECT id FROM users WHERE id = $1", user_id, "user");
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&rec.id)
            .bind(&rec.user_id)
            .bind(&rec.name)
            .bind(token_hash)
            .bind(rec.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_err(e, "a token with this hash"))?;
            commit!(tx);
            Ok(rec)
        }

        async fn revoke_token(&self, id: &TokenId) -> Result<TokenRecord> {
            let mut tx = begin!(self);
            let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                bump_generation!(&mut *tx);
            }
            let rec = sqlx::query_as::<_, TokenRecord>(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("token"))?;
            commit!(tx);
            Ok(rec)
        }

        async fn token_owner(&self, token_hash: &[u8]) -> Result<Option<TokenOwner>> {
            Ok(sqlx::query_as::<_, TokenOwner>(
                "SELECT id AS token_id, user_id, expires_at, last_used_at FROM api_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn revocation_count(&self) -> Result<i64> {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
            Ok(n)
        }
    }
}
