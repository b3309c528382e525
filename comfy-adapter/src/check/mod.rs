//! Will a prompt run on a given server? (filled in below)
