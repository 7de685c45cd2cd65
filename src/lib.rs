//! netstack: a user-space TCP/IP stack on a Linux TUN (or TAP) device. Library users: docs/API.md.
//!
//! Layering (ARCHITECTURE.md §5): `wire` <- `proto` <- `actor` <- `socket` <- bins. The actors
//! are internal: a stack is started with [`Stack::builder`] (or [`Stack::new`] on a device
//! the caller set up) and used through its [`StackHandle`] and the sockets.
pub(crate) mod actor;
pub mod buf;
pub mod builder;
#[cfg(feature = "cli")]
pub mod bulk;
pub mod device;
pub mod proto;
pub mod socket;
pub mod stats;
pub mod wire;

/// The README's Rust examples, compiled by `cargo test` as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The API overview's examples (docs/API.md), compiled as doctests likewise.
#[cfg(doctest)]
#[doc = include_str!("../docs/API.md")]
pub struct ApiDoctests;

pub use actor::{Stack, StackConfig, StackHandle, StackStats};
pub use builder::StackBuilder;
pub use socket::{IcmpSocket, IpVersion, PacketSocket};
pub use socket::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
pub use stats::{Counter, Counters};
#[cfg(feature = "cli")]
pub mod cli;
pub mod ctl;
pub mod log;
