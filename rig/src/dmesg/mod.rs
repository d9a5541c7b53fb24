//! Kernel-log analyzer (in progress).
