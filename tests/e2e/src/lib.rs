//! End-to-end tests live in `tests/`: the AWS pipeline against moto and PostgreSQL, compared with local mode.
#![deny(missing_docs)]
