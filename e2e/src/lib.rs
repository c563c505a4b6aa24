//! End-to-end tests live in `tests/`; they need the running stack (`scripts/test.sh` starts it).
