//! Where the outside programs the tests drive (`redis-server`, Chromium and
//! its `chromedriver`, `moto_server`) are installed.
//!
//! std only: besides being a module of this crate (used at run time to start
//! the programs), this file is included with `#[path]` by the build script of
//! every test crate whose tests need one of them ([`build_script`]), so the
//! decision "ignore these tests" and the lookup that starts the program are
//! the same code and look in the same places.
//!
//! A program is found through its environment variable when that is set
//! (`COMFY_REDIS_SERVER=/opt/redis/bin/redis-server`; a path that is not a
//! file means "not installed", which is how to try the suite without it),
//! otherwise as the first of its names found in `PATH`.

use std::path::{Path, PathBuf};

/// An outside program the tests start.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// What the messages call it.
    pub what: &'static str,
    /// Environment variable naming its path, overriding the `PATH` search.
    pub env: &'static str,
    /// Executable names looked up in `PATH`, in order.
    pub names: &'static [&'static str],
}

/// `redis-server`.
pub const REDIS_SERVER: Program = Program {
    what: "redis-server",
    env: "COMFY_REDIS_SERVER",
    names: &["redis-server"],
};

/// A Chromium (or Chrome) browser.
pub const CHROMIUM: Program = Program {
    what: "chromium",
    env: "COMFY_CHROMIUM",
    names: &["chromium", "chromium-browser", "google-chrome"],
};

/// The WebDriver server for that browser (Debian: package `chromium-driver`).
pub const CHROMEDRIVER: Program = Program {
    what: "chromedriver",
    env: "COMFY_CHROMEDRIVER",
    names: &["chromedriver"],
};

/// `moto_server`, an S3-compatible server (PyPI package `moto[server]`; CI installs it
/// into a venv and names it with `COMFY_MOTO_SERVER`).
pub const MOTO_SERVER: Program = Program {
    what: "moto_server",
    env: "COMFY_MOTO_SERVER",
    names: &["moto_server"],
};

/// A `cfg` the build scripts set when every one of its programs is found.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    /// The cfg name, e.g. `has_redis`.
    pub cfg: &'static str,
    /// The programs it needs.
    pub programs: &'static [Program],
    /// Environment variable that, set to `1`, makes a missing program a
    /// build failure instead of ignored tests (CI sets it).
    pub require_env: &'static str,
}

/// `cfg(has_redis)`: `redis-server` is installed.
pub const HAS_REDIS: Requirement = Requirement {
    cfg: "has_redis",
    programs: &[REDIS_SERVER],
    require_env: "COMFY_REQUIRE_REDIS",
};

/// `cfg(has_chromium)`: Chromium and chromedriver are installed.
pub const HAS_CHROMIUM: Requirement = Requirement {
    cfg: "has_chromium",
    programs: &[CHROMIUM, CHROMEDRIVER],
    require_env: "COMFY_REQUIRE_CHROMIUM",
};

/// `cfg(has_s3)`: `moto_server` is installed.
pub const HAS_S3: Requirement = Requirement {
    cfg: "has_s3",
    programs: &[MOTO_SERVER],
    require_env: "COMFY_REQUIRE_S3",
};

impl Program {
    /// Its path, or `None` when it is not installed.
    pub fn find(&self) -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(self.env).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .filter(|dir| dir.is_absolute())
            .flat_map(|dir| self.names.iter().map(move |n| dir.join(n)))
            .find(|p| is_executable(p))
    }
}

impl Requirement {
    /// Whether `require_env` is set to `1`.
    pub fn required(&self) -> bool {
        std::env::var(self.require_env).is_ok_and(|v| v.trim() == "1")
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The body of a test crate's `build.rs`: declares each requirement's cfg,
/// sets it when its programs are found, and otherwise warns (the tests under
/// `#[cfg_attr(not(has_redis), ignore = "...")]` are then reported as
/// ignored) or panics when the requirement's `require_env` is `1`.
///
/// Reruns when the lookup could change: the environment variables, a found
/// program's file, or (when one is missing) the `PATH` directories, where an
/// install would put it.
pub fn build_script(requirements: &[Requirement]) {
    println!("cargo::rerun-if-env-changed=PATH");
    for r in requirements {
        println!("cargo::rustc-check-cfg=cfg({})", r.cfg);
        println!("cargo::rerun-if-env-changed={}", r.require_env);
        let mut missing = Vec::new();
        for p in r.programs {
            println!("cargo::rerun-if-env-changed={}", p.env);
            match p.find() {
                Some(found) => println!("cargo::rerun-if-changed={}", found.display()),
                None => missing.push(p),
            }
        }
        if missing.is_empty() {
            println!("cargo::rustc-cfg={}", r.cfg);
            continue;
        }
        let names: Vec<&str> = missing.iter().map(|p| p.what).collect();
        let names = names.join(" and ");
        assert!(
            !r.required(),
            "{names} not found (PATH, or {}) and {}=1: the tests that need it must run",
            missing.iter().map(|p| p.env).collect::<Vec<_>>().join(", "),
            r.require_env
        );
        println!(
            "cargo::warning={names} not found: the tests that need it are reported as ignored"
        );
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path).filter(|d| d.is_absolute() && d.is_dir()) {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
        }
    }
}
