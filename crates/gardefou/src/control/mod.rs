//! The control plane: changes to what the gateway lets through, shared by the admin API and the
//! CLI, each one written to the audit log.

pub mod escalations;
pub mod feedback;
pub mod keys;
