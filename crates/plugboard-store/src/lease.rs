//! Named leases in the database (table `leases`): at most one holder at a time across processes and instances.
//! A holder renews its lease while it works; the lease of a holder that crashed ends at its expiry, after which
//! anyone may take it.

use async_trait::async_trait;

use crate::sql::{PgStore, SqliteStore};
use crate::Result;

/// A lease as the database holds it after a take attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Whether the caller holds the lease now.
    pub taken: bool,
    /// Who holds it (the caller when `taken`).
    pub holder: String,
    /// Since when this holder has held it (ms since the epoch).
    pub acquired_at: i64,
    /// Until when (ms since the epoch); the holder renews it before then.
    pub expires_at: i64,
    /// What the holder said it is doing.
    pub detail: String,
}

#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease `name` for `holder` (saying what it does in `detail`) until `until` when nobody holds it or
    /// its holder's lease ended before `now`; renews it (to `until`) when `holder` already holds it. Atomic (one
    /// statement).
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        detail: &str,
        now: i64,
        until: i64,
    ) -> Result<LeaseState>;
    /// Ends the lease if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// How many leases whose name starts with `prefix` are held at `now` (not yet expired).
    async fn count_leases(&self, prefix: &str, now: i64) -> Result<u64>;
}

macro_rules! leases_impl {
    ($store:ty) => {
        #[async_trait]
        impl Leases for $store {
            async fn try_lease(
                &self,
                name: &str,
                holder: &str,
                detail: &str,
                now: i64,
                until: i64,
            ) -> Result<LeaseState> {
                crate::bounded(self.timeout, "try_lease", async {
                let done = sqlx::query(
                    "INSERT INTO leases (name, holder, acquired_at, expires_at, detail) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, \
                     detail = excluded.detail, \
                     acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at \
                                        ELSE excluded.acquired_at END \
                     WHERE leases.holder = excluded.holder OR leases.expires_at < $3",
                )
                .bind(name)
                .bind(holder)
                .bind(now)
                .bind(until)
                .bind(detail)
                .execute(&self.pool)
                .await?;
                let row: Option<(String, i64, i64, String)> = sqlx::query_as(
                    "SELECT holder, acquired_at, expires_at, detail FROM leases WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                let (current, acquired_at, expires_at, detail) = row.unwrap_or_default();
                Ok(LeaseState {
                    taken: done.rows_affected() == 1 && current == holder,
                    holder: current,
                    acquired_at,
                    expires_at,
                    detail,
                })
                })
                .await
            }

            async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
                crate::bounded(self.timeout, "release_lease", async {
                    sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                        .bind(name)
                        .bind(holder)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
                .await
            }

            async fn count_leases(&self, prefix: &str, now: i64) -> Result<u64> {
                crate::bounded(self.timeout, "count_leases", async {
                    // The prefix is compared as it is (not a LIKE pattern); the table holds a few rows.
                    let (n,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM leases WHERE substr(name, 1, length($1)) = $1 AND expires_at >= $2",
                    )
                    .bind(prefix)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(u64::try_from(n).unwrap_or(0))
                })
                .await
            }
        }
    };
}

leases_impl!(SqliteStore);
leases_impl!(PgStore);
