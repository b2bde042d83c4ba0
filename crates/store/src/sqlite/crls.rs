//! Cached and imported CRLs on SQLite.

use async_trait::async_trait;

use super::SqliteStore;
use crate::CrlStore;

#[async_trait]
impl CrlStore for SqliteStore {}
