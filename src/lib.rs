//! netstack: a user-space TCP/IP stack on a Linux TUN device.
//!
//! Layering (ARCHITECTURE.md §5): `wire` <- `proto` <- `actor` <- `socket` <- bins.
pub mod actor;
pub mod buf;
pub mod bulk;
pub mod device;
pub mod proto;
pub mod socket;
pub mod wire;

pub use actor::{Stack, StackConfig, StackHandle};
pub use socket::{IcmpSocket, IpVersion, PacketSocket};
pub use socket::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
pub mod cli;
pub mod log;
