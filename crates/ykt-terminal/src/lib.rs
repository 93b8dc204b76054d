//! The POS terminal core of ykt, sans-I/O.
