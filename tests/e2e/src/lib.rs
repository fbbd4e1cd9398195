//! End-to-end tests live in `tests/`: the AWS pipeline against moto and PostgreSQL, compared with local mode,
//! and the stack deployed on a local emulator ([`stack`]), driven through its real triggers only.
#![deny(missing_docs)]

pub mod stack;
