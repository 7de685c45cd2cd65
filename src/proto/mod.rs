//! Sans-I/O protocol cores: pure state machines fed `(now, input)`.

/// Plain counters a core owns and bumps (`u64` fields, no atomics: the cores are pure).
/// The actor that runs the core publishes them for other threads after each batch
/// (`actor::Published`), through this trait's names and values in field order.
pub trait Counters: Default {
    /// The field names, in declaration order.
    const NAMES: &'static [&'static str];
    /// Call `f` with each field's value, in declaration order.
    fn each(&self, f: &mut dyn FnMut(u64));
    /// Build from `next()` called once per field, in declaration order.
    fn from_fn(next: &mut dyn FnMut() -> u64) -> Self;
    /// Add `other`'s counters to these, field by field.
    fn add(&mut self, other: &Self);

    /// Name/value pairs, for printing.
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut v = Vec::with_capacity(Self::NAMES.len());
        let mut names = Self::NAMES.iter();
        self.each(&mut |x| v.push((*names.next().expect("one name per field"), x)));
        v
    }
}

/// A [`Counters`] struct of `u64` fields, each named by its field:
/// `counters!(/** doc */ Name { /** doc */ a, b, c })`.
macro_rules! counters {
    ($(#[$doc:meta])* $ty:ident { $($(#[$fdoc:meta])* $name:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $ty { $($(#[$fdoc])* pub $name: u64,)* }
        impl $crate::proto::Counters for $ty {
            const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];
            fn each(&self, f: &mut dyn FnMut(u64)) {
                $(f(self.$name);)*
            }
            fn from_fn(next: &mut dyn FnMut() -> u64) -> Self {
                $ty { $($name: next(),)* }
            }
            fn add(&mut self, other: &Self) {
                $(self.$name += other.$name;)*
            }
        }
        impl $ty {
            /// Name/value pairs, for printing.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                $crate::proto::Counters::snapshot(self)
            }
        }
    };
}
pub mod dhcp;
pub mod dns;
pub mod frag;
pub mod ident;
pub mod ip;
pub mod link;
pub(crate) mod ports;
pub mod raw;
pub mod routing;
pub mod tcp;
pub mod timer;
pub mod udp;
