//! The revocation checks, with CRLs served by a local HTTP server and imported by the operator.
