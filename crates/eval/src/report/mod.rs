//! Reports: terminal text, the paper's Table-1 layout in Markdown ([`tables`]), and PNG
//! plots ([the plots module](mod@self::plots)).

pub mod plots;
pub mod tables;

pub use plots::*;
pub use tables::*;
