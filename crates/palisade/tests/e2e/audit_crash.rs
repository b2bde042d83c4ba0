//! kill -9 during an audit of a large fleet: the audit completes after a restart, with no duplicate findings.
