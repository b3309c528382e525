//! `comfyctl`: the tools of upgrade planners and developers, as a library and
//! as the `comfyctl` command (`src/bin/comfyctl/`, one module per
//! subcommand; every subcommand is described in `docs/tools.md`).
//!
//! - [`record`]: the probe suite of `fixtures/` run against a live server,
//!   written in the fixture format;
//! - [`diff`]: two recorded sets (or live servers) reduced to what clients
//!   depend on, changes classed breaking / additive / value-only / race;
//! - [`convert`]: a UI workflow turned into the API prompt a frontend sends;
//! - [`check`]: whether a prompt runs on a release's node catalogue;
//! - [`plan`]: one upgrade plan from A to B (API differences, workflows on
//!   both, frontend and gateway, rolling-upgrade steps, a verdict).
//!
//! Built on `comfy-adapter` (the runtime library) and `comfy-emulator`
//! (`comfyctl emulate`); no production service links this crate.

pub mod check;
pub mod convert;
pub mod diff;
pub mod plan;
pub mod record;
