//! The thing helpers other PostgreSQL modules (import, mitigation tasks) still call with
//! their own transaction; each runs the shared one (`crate::things`).

use deadpool_postgres::Transaction;

use super::error::Fail;
use crate::db::Db;
use crate::{things, Scope, ThingRefusal};

pub(super) use crate::things::THING_LOCK_SPACE;

pub(super) async fn keep_group(
    tx: &Transaction<'_>,
    scope: &Scope,
    name: &str,
) -> Result<Option<String>, Fail> {
    things::keep_group(&Db::PgTx(tx), scope, name).await
}

pub(super) async fn change_thing_groups_in(
    tx: &Transaction<'_>,
    scope: &Scope,
    thing_name: &str,
    add: &[String],
    remove: &[String],
    max_groups: usize,
) -> Result<Result<(), ThingRefusal>, Fail> {
    things::change_thing_groups_in(&Db::PgTx(tx), scope, thing_name, add, remove, max_groups).await
}
