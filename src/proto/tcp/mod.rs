//! TCP core (to be written).
