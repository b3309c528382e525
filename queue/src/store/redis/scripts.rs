//! The Lua scripts: each state change is ONE script (`*.lua` beside this file, with
//! `common.lua` prepended), loaded with `include_str!` and run by `redis::Script`
//! (EVALSHA, reloading itself after `NOSCRIPT`).

use redis::Script;

const COMMON: &str = include_str!("common.lua");

pub(super) struct Scripts {
    pub(super) submit: Script,
    pub(super) claim: Script,
    pub(super) heartbeat: Script,
    pub(super) complete: Script,
    pub(super) fail: Script,
    pub(super) hand_back: Script,
    pub(super) fail_pending: Script,
    pub(super) pending_front: Script,
    pub(super) workflow: Script,
    pub(super) reap: Script,
    pub(super) cancel: Script,
    pub(super) set_priority: Script,
    pub(super) list: Script,
    pub(super) position: Script,
    pub(super) add_file: Script,
    pub(super) record_upload: Script,
    pub(super) check_lease: Script,
    pub(super) expire_job_files: Script,
    pub(super) expire_uploads: Script,
    pub(super) migrate: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

impl Scripts {
    pub(super) fn load() -> Self {
        Self {
            submit: script(include_str!("submit.lua")),
            claim: script(include_str!("claim.lua")),
            heartbeat: script(include_str!("heartbeat.lua")),
            complete: script(include_str!("complete.lua")),
            fail: script(include_str!("fail.lua")),
            hand_back: script(include_str!("hand_back.lua")),
            fail_pending: script(include_str!("fail_pending.lua")),
            pending_front: script(include_str!("pending_front.lua")),
            workflow: script(include_str!("workflow.lua")),
            reap: script(include_str!("reap.lua")),
            cancel: script(include_str!("cancel.lua")),
            set_priority: script(include_str!("set_priority.lua")),
            list: script(include_str!("list.lua")),
            position: script(include_str!("position.lua")),
            add_file: script(include_str!("add_file.lua")),
            record_upload: script(include_str!("record_upload.lua")),
            check_lease: script(include_str!("check_lease.lua")),
            expire_job_files: script(include_str!("expire_job_files.lua")),
            expire_uploads: script(include_str!("expire_uploads.lua")),
            migrate: script(include_str!("migrate.lua")),
        }
    }
}

/// Token argument for the scripts: `""` for none, else `t:<token>` (so `Some("")` stays a
/// token that matches nothing instead of turning into "no token").
pub(super) fn token_arg(token: Option<&str>) -> String {
    token.map_or_else(String::new, |t| format!("t:{t}"))
}
