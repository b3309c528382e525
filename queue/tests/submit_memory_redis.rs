//! [`submit_memory`](./submit_memory.rs) on the Redis store: one large submit holds at most
//! three times its body in the queue's process (the redis-server's own memory is another
//! process). One test in this binary, so nothing else allocates meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_queue::Settings;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

#[tokio::test(flavor = "current_thread")]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_large_submit_on_redis_holds_at_most_three_times_its_body() {
    let h = common::redis_harness().await;
    let a = common::test_app_with(
        h.store,
        Settings {
            max_pending: 0,
            ..Settings::default()
        },
        h.guard,
    );
    common::one_large_submit_within_three_bodies(
        &a,
        || ALLOC.current_usage(),
        || ALLOC.reset_peak_usage(),
        || ALLOC.peak_usage(),
    )
    .await;
}
