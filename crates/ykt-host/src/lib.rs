//! The host of ykt: the front-end processor and the one-card core platform.
