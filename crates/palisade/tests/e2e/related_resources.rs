//! ListRelatedResourcesForAuditFinding.
