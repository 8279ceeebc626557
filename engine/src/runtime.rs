//! What the engine needs from the glommio executor it runs on.
//!
//! glommio 0.9 can park its executor although a task queue is still runnable: when the
//! preemption flag is already set as the scheduler loop starts, the loop reports "nothing
//! ran" and the executor sleeps in `io_uring_enter` until some completion arrives (glommio
//! later fixed this by not parking in that case). With no I/O and no timer pending, that sleep
//! never ends: the shard hangs. [`ensure_reactor_tick`] keeps one short timer armed on the
//! executor, which bounds such a mis-park to one tick. `DmaFs::new` and `Db::open` call it, so
//! it runs before the engine's first I/O; a shard runtime may call it even earlier.

use std::cell::Cell;
use std::time::Duration;

/// Period of the reactor tick.
pub const REACTOR_TICK: Duration = Duration::from_millis(2);

thread_local! {
    /// Id of the executor on this thread that already has a tick task.
    static TICKING: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Starts the reactor tick on the current glommio executor, once per executor.
pub fn ensure_reactor_tick() {
    let id = glommio::executor().id();
    if TICKING.with(|t| t.get()) == Some(id) {
        return;
    }
    TICKING.with(|t| t.set(Some(id)));
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(REACTOR_TICK).await;
        }
    })
    .detach();
}
