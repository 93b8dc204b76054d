//! The POS terminal program (`ykt pos`): the sans-I/O core of `ykt-terminal` wired to files,
//! the screen or a JSON-lines script, and the network.

pub mod card_file;
pub mod clock;
pub mod driver;
pub mod file_flash;
pub mod headless;
pub mod json;
pub mod net;
pub mod provision;
pub mod tui;
