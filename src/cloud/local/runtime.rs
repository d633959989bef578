//! Starting the local cloud in-process.
