//! Scheduled audits: their operations and the scheduler, with a controllable clock.
