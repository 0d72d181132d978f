//! placeholder: span tree rendering.
