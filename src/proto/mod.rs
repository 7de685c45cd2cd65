//! Sans-I/O protocol cores: pure state machines fed `(now, input)`.

/// A struct of relaxed atomic counters, each named by its field, with `snapshot()` giving
/// the name/value pairs: `atomic_counters!(/** doc */ Name { a, b, c })`.
macro_rules! atomic_counters {
    ($(#[$doc:meta])* $ty:ident { $($name:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $ty { $(pub $name: std::sync::atomic::AtomicU64,)* }
        impl $ty {
            /// Name/value pairs, for printing.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(std::sync::atomic::Ordering::Relaxed)),)*]
            }
        }
    };
}
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
