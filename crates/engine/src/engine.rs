//! The engine value every operation is a method of.

use std::sync::Arc;

use palisade_store::Store;

use crate::{credentials, paging, AuditSettings, Clock, EngineResult, IdSource};

/// Quotas AWS documents for the resources the engine manages.
#[derive(Debug, Clone)]
pub struct Limits {
    pub mitigation_actions_per_account: usize,
    pub tags_per_resource: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            mitigation_actions_per_account: 100,
            tags_per_resource: 50,
        }
    }
}

/// The engine: cheap to clone, shared by every request handler.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdSource>,
    pub(crate) tokens: paging::TokenSigner,
    pub(crate) limits: Limits,
    pub(crate) audit_settings: AuditSettings,
    pub(crate) credentials: credentials::CredentialCache,
    /// Wakes this node's audit worker when a task is started here.
    pub(crate) audit_wakeup: Arc<tokio::sync::Notify>,
    /// Wakes this node's mitigation workers when a mitigation task is started here.
    pub(crate) mitigation_wakeup: Arc<tokio::sync::Notify>,
    /// Moves when the registry changes in a way live device connections must see.
    pub(crate) registry_epoch: crate::gateway::RegistryEpoch,
    /// Where devices connect (DescribeEndpoint); set by the owner of the device gateway.
    pub(crate) data_endpoint: std::sync::RwLock<Option<String>>,
}

impl Engine {
    /// Builds an engine over a store; reads the store's server secret once.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        limits: Limits,
    ) -> EngineResult<Self> {
        Self::with_settings(store, clock, ids, limits, AuditSettings::default()).await
    }

    /// Builds an engine with audit settings other than the defaults.
    pub async fn with_settings(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
        limits: Limits,
        audit_settings: AuditSettings,
    ) -> EngineResult<Self> {
        let secret = store.server_secret().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: paging::TokenSigner::new(&secret),
                credentials: credentials::CredentialCache::new(store.clone()),
                store,
                clock,
                ids,
                limits,
                audit_settings,
                audit_wakeup: Arc::new(tokio::sync::Notify::new()),
                mitigation_wakeup: Arc::new(tokio::sync::Notify::new()),
                registry_epoch: Default::default(),
                data_endpoint: std::sync::RwLock::new(None),
            }),
        })
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    #[allow(dead_code)] // Read by the scheduler, the SNS publisher and the CRL fetcher.
    pub(crate) fn audit_settings(&self) -> &AuditSettings {
        &self.inner.audit_settings
    }
}
