//! TCP wire format (to be written).
