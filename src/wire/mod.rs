//! Packet views and representations (no state).
pub mod tcp;
