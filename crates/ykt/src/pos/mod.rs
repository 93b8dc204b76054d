//! The POS terminal program: the sans-I/O core of `ykt-terminal` wired to files, the
//! screen and the network.

#[allow(dead_code)] // used by the POS program, which is not written yet
pub mod file_flash;
