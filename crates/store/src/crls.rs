//! Certificate revocation lists: fetched from distribution points and cached until their
//! nextUpdate, or imported by the operator.

use async_trait::async_trait;

#[async_trait]
pub trait CrlStore: Send + Sync {}
