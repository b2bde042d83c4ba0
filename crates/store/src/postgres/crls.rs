//! Cached and imported CRLs on PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use crate::CrlStore;

#[async_trait]
impl CrlStore for PostgresStore {}
