//! Sans-I/O protocol cores: pure state machines fed `(now, input)`.
pub mod tcp;
