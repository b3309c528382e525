//! What one large submit costs the queue in memory, counted by the allocator (this binary's
//! global allocator counts the live bytes and their peak): the workflow stays the JSON text
//! it came in as, from the body to the store, and is never built into a tree of values
//! (which took about 16 times the body). One test in this binary, so nothing else allocates
//! meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_queue::Settings;
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

#[tokio::test(flavor = "current_thread")]
async fn a_large_submit_holds_at_most_three_times_its_body() {
    let a = common::test_app(Settings {
        max_pending: 0,
        ..Settings::default()
    });
    common::one_large_submit_within_three_bodies(
        &a,
        || ALLOC.current_usage(),
        || {
            ALLOC.reset_peak_usage();
        },
        || ALLOC.peak_usage(),
    )
    .await;
}
