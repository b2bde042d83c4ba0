//! What the device gateway reads to authenticate and authorize a device: the accounts a
//! client certificate is registered in, and the policies and thing behind a connection.

use palisade_store_macros::engines;

use crate::db::{DbResult, Row, Sql};
use crate::{Scope, StoreResult};

/// One registration of a client certificate: the account and the certificate's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRegistration {
    pub account_id: String,
    pub status: String,
}

/// A thing the certificate is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedThing {
    pub name: String,
    /// Attached with `EXCLUSIVE_THING`.
    pub exclusive: bool,
}

/// The named policy's default version, as it authorizes a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub name: String,
    pub document: String,
}

// A device certificate's status: a column of `certificates` on PostgreSQL, of
// `certificate_states` on SQLite.
const REGISTRATIONS: &Sql<'static> = &Sql::per_dialect(
    "SELECT account_id, status FROM certificates WHERE id = $1 AND region = $2 \
     ORDER BY account_id",
    "SELECT account_id, status FROM certificate_states WHERE id = ?1 AND region = ?2 \
     ORDER BY account_id",
);
const STATUSES: &Sql<'static> = &Sql::per_dialect(
    "SELECT id, account_id, status FROM certificates WHERE region = $1 AND id = ANY($2::text[])",
    "SELECT id, account_id, status FROM certificate_states WHERE region = ?1 AND id = (?2)",
);

fn registration(row: &Row<'_>) -> DbResult<CertificateRegistration> {
    Ok(from_row!(row => CertificateRegistration { account_id, status }))
}

fn attached(row: &Row<'_>) -> DbResult<AttachedThing> {
    Ok(from_row!(row => AttachedThing { name, exclusive }))
}

fn effective(row: &Row<'_>) -> DbResult<EffectivePolicy> {
    Ok(from_row!(row => EffectivePolicy { name, document }))
}

#[engines]
pub trait GatewayStore: Send + Sync {
    /// Every account of `region` where a certificate with this id is registered.
    async fn certificate_registrations(
        &self,
        region: &str,
        certificate_id: &str,
    ) -> StoreResult<Vec<CertificateRegistration>> {
        self.read(async |db| {
            db.query(REGISTRATIONS, &[&certificate_id, &region], registration)
                .await
        })
        .await
    }

    /// The things the certificate is attached to, by name (at most `limit`).
    async fn attached_things(
        &self,
        scope: &Scope,
        certificate_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<AttachedThing>> {
        let limit = crate::db::sql_limit(limit);
        self.read(async |db| {
            db.query(
                sql!(
                    "SELECT thing_name, exclusive FROM thing_principals",
                    " WHERE account_id = $1 AND region = $2 AND certificate_id = $3",
                    " ORDER BY thing_name LIMIT $4"
                ),
                &[&scope.account_id, &scope.region, &certificate_id, &limit],
                attached,
            )
            .await
        })
        .await
    }

    /// The default versions of the policies that authorize a device: those attached to
    /// the certificate (`certificate_arn`) and, when `thing_name` is given, to the thing
    /// groups the thing is in and to their ancestors; each policy once, by name.
    async fn effective_policies(
        &self,
        scope: &Scope,
        certificate_arn: &str,
        thing_name: Option<&str>,
    ) -> StoreResult<Vec<EffectivePolicy>> {
        // No thing: no group matches the empty name (thing names are never empty).
        let thing = thing_name.unwrap_or("");
        self.read(async |db| {
            db.query(
                sql!(
                    "WITH RECURSIVE grp (name, arn, parent_name) AS (",
                    " SELECT g.name, g.arn, g.parent_name FROM thing_group_members m",
                    " JOIN thing_groups g ON g.account_id = m.account_id",
                    " AND g.region = m.region AND g.name = m.group_name",
                    " WHERE m.account_id = $1 AND m.region = $2 AND m.thing_name = $3",
                    " UNION",
                    " SELECT p.name, p.arn, p.parent_name FROM grp",
                    " JOIN thing_groups p ON p.account_id = $1 AND p.region = $2",
                    " AND p.name = grp.parent_name)",
                    " SELECT DISTINCT p.name, v.document FROM policy_attachments a",
                    " JOIN policies p ON p.account_id = a.account_id",
                    " AND p.region = a.region AND p.name = a.policy_name",
                    " JOIN policy_versions v ON v.account_id = p.account_id",
                    " AND v.region = p.region AND v.policy_name = p.name",
                    " AND v.version_id = p.default_version_id",
                    " WHERE a.account_id = $1 AND a.region = $2",
                    // One IN list, so both engines seek the attachments by target
                    // (an OR with the subquery made SQLite walk every attachment).
                    " AND a.target IN (SELECT $4 UNION ALL SELECT arn FROM grp)",
                    " ORDER BY p.name"
                ),
                &[&scope.account_id, &scope.region, &thing, &certificate_arn],
                effective,
            )
            .await
        })
        .await
    }

    /// Every registration (id, account, status) of these certificate ids in `region`:
    /// what the gateway compares with the connections it holds.
    async fn certificate_statuses(
        &self,
        region: &str,
        certificate_ids: &[String],
    ) -> StoreResult<Vec<(String, String, String)>> {
        self.read(async |db| {
            let mut out = Vec::new();
            for chunk in certificate_ids.chunks(500) {
                let items: Vec<&str> = chunk.iter().map(String::as_str).collect();
                out.extend(
                    db.query_any(STATUSES, &[&region], &items, |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .await?,
                );
            }
            Ok(out)
        })
        .await
    }
}
