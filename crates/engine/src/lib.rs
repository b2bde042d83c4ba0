//! The domain: what Palisade's operations mean, independent of HTTP.
//!
//! The API layer hands the engine decoded, model-validated requests together with the
//! caller's [`Scope`]; the engine applies the domain rules the model cannot express,
//! talks to the store, and answers with model response shapes or an [`EngineError`].

mod arn;
mod audits;
mod certificates;
pub mod clock;
mod connections_import;
mod connectivity;
pub mod credentials;
mod engine;
mod error;
mod gateway;
mod iam;
mod import;
mod logging;
mod mitigation_actions;
mod paging;
mod policies;
mod principals;
mod role_aliases;
mod settings;
mod tagging;
mod things;

pub use audits::BackgroundWork;
pub use clock::{Clock, IdSource, RandomIds, SystemClock};
pub use connections_import::{ConnectionImportSummary, ConnectionLineError};
pub use engine::{Engine, Limits};
pub(crate) use error::required;
pub use error::{EngineError, EngineResult};
pub use gateway::{AuthRefusal, DeviceAuthorization, DeviceIdentity};
pub use iam::IamImportSummary;
pub use import::{
    ImportObserver, ImportOptions, ImportSummary, LineError, NoObserver, Resource, ResourceCounts,
    DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_LINE_BYTES,
};
pub use palisade_store::Scope;
pub use settings::{AuditSettings, CrlSettings, SnsSettings};
