//! The book's Rust snippets (`docs/src/*.md`), each chapter included as the documentation of a
//! module so that `cargo test -p docs-snippets --doc` compiles (and runs) every ```` ```rust ````
//! block as written there. A block that must not run (it would start a Lambda runtime) is
//! marked `no_run`; setup lines a reader does not need are hidden with `# `, as mdBook hides
//! them.

#[doc = include_str!("../../src/handler.md")]
pub mod handler {}

#[doc = include_str!("../../src/flags.md")]
pub mod flag_format {}

#[doc = include_str!("../../src/flagd.md")]
pub mod flagd {}

#[doc = include_str!("../../src/powertools.md")]
pub mod powertools {}

#[doc = include_str!("../../src/other-languages.md")]
pub mod other_languages {}

#[doc = include_str!("../../src/experiments.md")]
pub mod experiments {}

#[doc = include_str!("../../src/introduction.md")]
pub mod introduction {}

#[doc = include_str!("../../src/extension.md")]
pub mod extension {}

#[doc = include_str!("../../src/operating.md")]
pub mod operating {}

#[doc = include_str!("../../src/deploying.md")]
pub mod deploying {}

#[doc = include_str!("../../src/appconfig.md")]
pub mod appconfig {}

#[doc = include_str!("../../src/reliability.md")]
pub mod reliability {}

#[doc = include_str!("../../src/development.md")]
pub mod development {}

#[doc = include_str!("../../../README.md")]
pub mod readme {}
