//! DHCPv4 client core (RFC 2131, options from RFC 2132), for the stack on a TAP device.
//!
//! Pure, as every core here: [`wire`] reads and writes BOOTP/DHCP messages over byte
//! slices; [`client::Client`] is the state machine, fed `(now, message)` and timeouts, that
//! queues messages to send (each with its IPv4 source and destination; the UDP ports are
//! always 68 → 67) and [`client::Event`]s (`Configured(Lease)`, `Deconfigured`) for its
//! owner, the ip actor (`actor::dhcp`), which installs the lease in the IP and link cores.
//! The caller passes the clock and the seed of the transaction ids and jitter.
//!
//! Not done: DECLINE after an ARP probe of the offered address (RFC 2131 §2.2 SHOULD),
//! INIT-REBOOT (no lease is remembered across runs), INFORM, option overload, relay agents.

pub mod client;
pub mod wire;

pub use client::{Client, ClientConfig, DhcpStats, Event, Lease, State, Transmit};

#[cfg(test)]
mod tests;
