#![allow(missing_docs)]
pub mod __private {
    pub use crate::bindings::*;
}
mod bindings;
