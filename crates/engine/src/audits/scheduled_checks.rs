//! The check names a scheduled audit stores (a JSON array), read by the scheduled audit
//! operations, the scheduler that starts them and the configuration that may not
//! disable a check they use.

use palisade_store::ScheduledAuditRecord;

use crate::{EngineError, EngineResult};

pub(super) fn decode_check_names(record: &ScheduledAuditRecord) -> EngineResult<Vec<String>> {
    serde_json::from_str(&record.checks_json).map_err(|e| {
        EngineError::Internal(format!(
            "stored checks of scheduled audit {} are unreadable: {e}",
            record.name
        ))
    })
}

pub(super) fn encode_check_names(names: &[String]) -> EngineResult<String> {
    serde_json::to_string(names).map_err(|e| EngineError::Internal(e.to_string()))
}
