//! Sans-I/O protocol cores: pure state machines fed `(now, input)`.
pub mod dhcp;
pub mod dns;
pub mod frag;
pub mod ip;
pub mod link;
pub mod raw;
pub mod routing;
pub mod tcp;
pub mod timer;
pub mod udp;
