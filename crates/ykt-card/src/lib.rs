//! Cards as a terminal's reader sees them: MIFARE Classic 1K and PBOC-style CPU cards.
