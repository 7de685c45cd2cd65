//! netstack: a user-space TCP/IP stack on a Linux TUN device.
pub mod proto;
pub mod wire;
