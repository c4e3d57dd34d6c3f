//! A member's outgoing queue and the writer that drains it.
//!
//! The room task pushes [`SharedFrame`]s with [`Outlet::push`]; the member's
//! own connection pushes the control frames its `Connection` produces with
//! [`Outlet::push_control`]. The queue is bounded by the bytes it holds: a
//! push past the bound refuses the frame and marks the member kicked, so the
//! room never waits. Control frames count too, so a peer that sends pings but
//! never reads cannot pile up pongs; only the final close frame is always let
//! through.
//!
//! The member's task drains the queue with a [`Writer`]: it takes everything
//! ready at once and writes it in as few system calls as it can, gathering
//! small frames into one buffer per thread. The queue is a locked `VecDeque`
//! and one waker rather than a channel, so an idle member's queue holds no
//! memory beyond a few words.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use natter_core::event::SharedFrame;
use natter_core::metrics::Metrics;
use smol::Async;

/// Most bytes of small frames gathered into one write.
const GATHER_BYTES: usize = 64 * 1024;

thread_local! {
    /// Where each executor thread gathers a batch's small frames.
    static GATHER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(GATHER_BYTES));
}

/// Makes one write of `bytes`; a write that takes nothing of a non-empty
/// slice is an error.
fn write_all_once(stream: &Async<TcpStream>, bytes: &[u8]) -> io::Result<usize> {
    let written = stream.get_ref().write(bytes)?;
    if written == 0 && !bytes.is_empty() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(written)
}

/// Most queue slots kept allocated once a batch is written, so a burst (the
/// joins of a filling room) does not pin its memory for the member's life.
const KEEP_SLOTS: usize = 8;

/// One piece of outgoing bytes, in the order it must reach the socket.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame from the room, shared with every other member's queue.
    Room(SharedFrame),
    /// Bytes from the member's own `Connection` (pongs, pings, close).
    Control {
        /// The encoded frames.
        bytes: Box<[u8]>,
        /// Whether a close frame is among them, after which nothing more
        /// may be written.
        closes: bool,
    },
}

impl Outgoing {
    /// Returns the bytes to write.
    fn bytes(&self) -> &[u8] {
        match self {
            Outgoing::Room(frame) => frame.as_bytes(),
            Outgoing::Control { bytes, .. } => bytes,
        }
    }
}

/// The items waiting for the writer, and how to wake it.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// The member task's waker, woken on a kick and, while `wants_items`,
    /// on the next push.
    waker: Option<Waker>,
    /// Whether the writer is idle and waits for a push.
    wants_items: bool,
    /// Set once the writer is gone; pushes then fail.
    closed: bool,
}

/// State shared by a member's outlet handles and its writer.
#[derive(Debug)]
struct OutletState {
    queue: Mutex<Queue>,
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Bound on `queued`, less `exempt`.
    limit: usize,
    /// Bytes of the welcome still queued: the welcome is sized by the room,
    /// not by how fast the member reads, so it does not count toward the
    /// bound.
    exempt: AtomicUsize,
    /// Set once the member has been dropped for a full queue.
    kicked: AtomicBool,
}

/// A handle on one member's outgoing queue, held by its room and itself.
#[derive(Debug, Clone)]
pub struct Outlet {
    state: Arc<OutletState>,
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue would pass its bound; the member is now marked kicked.
    Full,
    /// The member's writer is gone.
    Gone,
}

impl Outlet {
    /// Creates an outlet whose queue may hold at most `limit` bytes, and the
    /// writer that drains it.
    pub fn new(limit: usize) -> (Outlet, Writer) {
        let state = Arc::new(OutletState {
            queue: Mutex::new(Queue::default()),
            queued: AtomicUsize::new(0),
            exempt: AtomicUsize::new(0),
            limit,
            kicked: AtomicBool::new(false),
        });
        let outlet = Outlet { state };
        let writer = Writer {
            outlet: outlet.clone(),
            batch: VecDeque::new(),
            offset: 0,
            close_written: false,
            kick_applied: false,
        };
        (outlet, writer)
    }

    /// Locks the queue; a poisoned lock still holds a whole queue, since no
    /// critical section can panic half way.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a room frame for this member.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] when the frame would take the queue past its
    /// bound (the member is marked kicked and its task woken), and
    /// [`PushError::Gone`] when the member's writer has ended.
    pub fn push(&self, frame: &SharedFrame) -> Result<(), PushError> {
        if self.is_kicked() {
            return Err(PushError::Full);
        }
        let len = frame.as_bytes().len();
        if !self.reserve(len, false) {
            return Err(PushError::Full);
        }
        self.enqueue(Outgoing::Room(frame.clone()), len)
            .map_err(|_| PushError::Gone)
    }

    /// Queues a joiner's welcome, which must come before any other frame
    /// and is never refused for its size: a large room's roster may exceed
    /// the queue bound, and the bound then applies to what follows it.
    ///
    /// # Errors
    ///
    /// [`PushError::Gone`] when the member's writer has ended.
    pub fn push_welcome(&self, frame: &SharedFrame) -> Result<(), PushError> {
        let len = frame.as_bytes().len();
        self.state.exempt.fetch_add(len, Ordering::AcqRel);
        self.state.queued.fetch_add(len, Ordering::AcqRel);
        self.enqueue(Outgoing::Room(frame.clone()), len)
            .map_err(|_| PushError::Gone)
    }

    /// Queues control bytes from the member's own connection.
    ///
    /// Bytes that hold our close frame are always queued. Others that would
    /// take the queue past its bound are dropped and the member is marked
    /// kicked, as for a room frame. Returns `false` when the bytes were not
    /// queued.
    pub fn push_control(&self, bytes: Vec<u8>, closes: bool) -> bool {
        let len = bytes.len();
        if !self.reserve(len, closes) {
            return false;
        }
        let item = Outgoing::Control {
            bytes: bytes.into_boxed_slice(),
            closes,
        };
        self.enqueue(item, len).is_ok()
    }

    /// Counts `len` more bytes against the bound unless that passes it (and
    /// `always` is false), in which case the member is marked kicked.
    fn reserve(&self, len: usize, always: bool) -> bool {
        let before = self.state.queued.fetch_add(len, Ordering::AcqRel);
        let limit = self
            .state
            .limit
            .saturating_add(self.state.exempt.load(Ordering::Acquire));
        if !always && before.saturating_add(len) > limit {
            self.state.queued.fetch_sub(len, Ordering::AcqRel);
            self.mark_kicked();
            return false;
        }
        true
    }

    /// Appends a counted item and wakes an idle writer; gives the item back
    /// (uncounted) when the writer is gone.
    fn enqueue(&self, item: Outgoing, len: usize) -> Result<(), Outgoing> {
        let mut queue = self.lock();
        if queue.closed {
            drop(queue);
            self.state.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(item);
        }
        queue.items.push_back(item);
        let waker = if queue.wants_items {
            queue.wants_items = false;
            queue.waker.clone()
        } else {
            None
        };
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Marks the member kicked: the writer skips room frames from now on and
    /// the member's task is woken to close with 1008.
    pub fn mark_kicked(&self) {
        if self.state.kicked.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = self.lock().waker.clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Returns whether the member was dropped for a full queue.
    pub fn is_kicked(&self) -> bool {
        self.state.kicked.load(Ordering::Acquire)
    }
}

/// Where a [`Writer`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued is written; a push wakes the task.
    Idle,
    /// The socket is full; its writability wakes the task.
    Blocked,
    /// A close frame has been written; nothing more will be.
    Closed,
}

/// The member side of an outlet: drains the queue into the socket.
///
/// Polled from the member's task, which it wakes when something is pushed
/// while it is idle, when the socket drains while it is blocked, and when
/// the member is kicked. Once the member is kicked, the room frame being
/// written is finished and every other room frame, batched or queued, is
/// dropped unwritten; nothing is written after a close frame.
#[derive(Debug)]
pub struct Writer {
    outlet: Outlet,
    /// Items taken from the queue and not yet wholly written.
    batch: VecDeque<Outgoing>,
    /// Bytes of the front item already written.
    offset: usize,
    close_written: bool,
    /// Whether the room frames batched before a kick have been dropped.
    kick_applied: bool,
}

impl Writer {
    /// Returns the outlet this writer drains.
    pub fn outlet(&self) -> &Outlet {
        &self.outlet
    }

    /// Registers `cx`'s waker for kicks and pushes without looking at the
    /// queue.
    pub fn register(&self, cx: &Context<'_>) {
        let mut queue = self.outlet.lock();
        store_waker(&mut queue.waker, cx);
    }

    /// Writes what is queued until the queue is empty, the socket is full
    /// or a close frame has gone out, leaving the task's waker registered
    /// for whichever of those can change.
    ///
    /// # Errors
    ///
    /// Fails when the socket write fails; the caller ends the connection.
    pub fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Async<TcpStream>,
        metrics: &Metrics,
    ) -> io::Result<Flushed> {
        loop {
            if self.close_written {
                self.discard_queued();
                return Ok(Flushed::Closed);
            }
            if !self.kick_applied && self.outlet.is_kicked() {
                // Once kicked, the peer gets the end of the frame being
                // written, so the stream stays whole, and then only control
                // frames: the close with 1008 follows at once.
                self.kick_applied = true;
                self.drop_room_frames();
            }
            if self.batch.is_empty() && !self.take_queued(cx) {
                return Ok(Flushed::Idle);
            }

            match self.write_some(stream) {
                Ok(written) => metrics.bytes_sent(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if stream.poll_writable(cx)?.is_pending() {
                        self.register(cx);
                        return Ok(Flushed::Blocked);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves everything queued into the batch; when nothing is, registers
    /// the waker for the next push and returns `false`.
    fn take_queued(&mut self, cx: &Context<'_>) -> bool {
        loop {
            let mut queue = self.outlet.lock();
            if queue.items.is_empty() {
                store_waker(&mut queue.waker, cx);
                queue.wants_items = true;
                return false;
            }
            queue.wants_items = false;
            std::mem::swap(&mut queue.items, &mut self.batch);
            drop(queue);

            if self.outlet.is_kicked() {
                self.drop_room_frames();
            }
            if !self.batch.is_empty() {
                return true;
            }
        }
    }

    /// Drops the room frames of a kicked member's batch, uncounting them;
    /// a frame partly written already is kept, to be finished.
    fn drop_room_frames(&mut self) {
        let mut dropped = 0;
        let mut front_started = self.offset > 0;
        self.batch.retain(|item| {
            let keep = match item {
                Outgoing::Room(frame) if !front_started => {
                    dropped += frame.as_bytes().len();
                    false
                }
                Outgoing::Room(_) | Outgoing::Control { .. } => true,
            };
            front_started = false;
            keep
        });
        self.outlet
            .state
            .queued
            .fetch_sub(dropped, Ordering::AcqRel);
    }

    /// Makes one write of the batch's front and advances past what it
    /// wrote; returns the bytes written.
    ///
    /// Small frames are first gathered into this thread's buffer: the
    /// kernel copies one long slice far faster than dozens of short ones,
    /// and the copy here is of a few kilobytes. A front item too large to
    /// gather with others is written straight from its own bytes.
    fn write_some(&mut self, stream: &Async<TcpStream>) -> io::Result<usize> {
        // The first item always goes; more join while they fit the buffer.
        let mut gathered_bytes = 0;
        let mut count = 0;
        for bytes in self.unwritten() {
            if count > 0 && gathered_bytes + bytes.len() > GATHER_BYTES {
                break;
            }
            gathered_bytes += bytes.len();
            count += 1;
        }

        let written = if count == 1 {
            write_all_once(stream, self.unwritten().next().unwrap_or_default())?
        } else {
            GATHER.with(|gather| {
                let mut gather = gather.borrow_mut();
                gather.clear();
                for bytes in self.unwritten().take(count) {
                    gather.extend_from_slice(bytes);
                }
                write_all_once(stream, &gather)
            })?
        };
        self.advance(written);
        Ok(written)
    }

    /// Returns the bytes still to write of each batched item in order, up
    /// to and including a close frame.
    fn unwritten(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut closed = false;
        self.batch.iter().enumerate().map_while(move |(i, item)| {
            if closed {
                return None;
            }
            closed = matches!(item, Outgoing::Control { closes: true, .. });
            let skip = if i == 0 { self.offset } else { 0 };
            Some(item.bytes().get(skip..).unwrap_or_default())
        })
    }

    /// Drops the wholly written items from the batch and records how far
    /// into the next one the write got.
    fn advance(&mut self, written: usize) {
        let state = &self.outlet.state;
        state.queued.fetch_sub(written, Ordering::AcqRel);
        // The welcome is the first item ever queued, so the first bytes
        // written are its own.
        let _ = state
            .exempt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |exempt| {
                (exempt > 0).then(|| exempt.saturating_sub(written))
            });
        let mut left = written;
        while let Some(item) = self.batch.front() {
            let rest = item.bytes().len() - self.offset;
            if left < rest {
                self.offset += left;
                break;
            }
            left -= rest;
            self.offset = 0;
            let closes = matches!(item, Outgoing::Control { closes: true, .. });
            self.batch.pop_front();
            if closes {
                self.close_written = true;
                break;
            }
        }
        if self.batch.is_empty() && self.batch.capacity() > KEEP_SLOTS {
            self.batch = VecDeque::new();
        }
    }

    /// Drops whatever is batched or queued once nothing more may be written.
    fn discard_queued(&mut self) {
        let queued = std::mem::take(&mut self.outlet.lock().items);
        let dropped: usize = self
            .batch
            .drain(..)
            .chain(queued)
            .map(|item| item.bytes().len())
            .sum();
        self.offset = 0;
        self.outlet
            .state
            .queued
            .fetch_sub(dropped, Ordering::AcqRel);
    }
}

impl Drop for Writer {
    /// Closes the queue, so the room's later pushes fail and free nothing
    /// here.
    fn drop(&mut self) {
        let mut queue = self.outlet.lock();
        queue.closed = true;
        queue.waker = None;
        let items = std::mem::take(&mut queue.items);
        drop(queue);
        drop(items);
    }
}

/// Stores `cx`'s waker in `slot` unless an equivalent one is there.
fn store_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use futures_lite::AsyncReadExt;

    use super::*;

    /// Returns a connected pair of loopback streams, the server's ready for
    /// a writer.
    async fn stream_pair() -> (Arc<Async<TcpStream>>, async_net::TcpStream) {
        let listener = async_net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = async_net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server.into(), client)
    }

    /// Drives `writer` until it has written everything queued or a close
    /// frame, then drops it, closing the stream.
    async fn flush(mut writer: Writer, stream: Arc<Async<TcpStream>>, metrics: &Metrics) {
        poll_fn(|cx| match writer.poll_flush(cx, &stream, metrics) {
            Ok(Flushed::Blocked) => Poll::Pending,
            Ok(Flushed::Idle | Flushed::Closed) => Poll::Ready(()),
            Err(e) => panic!("write failed: {e}"),
        })
        .await;
    }

    /// Returns how many items wait in the outlet's queue.
    fn queued_items(outlet: &Outlet) -> usize {
        outlet.lock().items.len()
    }

    #[test]
    fn push_past_the_bound_marks_the_member_kicked() {
        let frame = SharedFrame::text(&[b'x'; 100]);
        let (outlet, _writer) = Outlet::new(frame.len() * 3);
        for _ in 0..3 {
            assert_eq!(outlet.push(&frame), Ok(()));
        }

        assert_eq!(outlet.push(&frame), Err(PushError::Full));
        assert!(outlet.is_kicked());
        assert_eq!(queued_items(&outlet), 3);
    }

    #[test]
    fn a_welcome_larger_than_the_bound_is_queued_and_not_counted() {
        let welcome = SharedFrame::text(&[b'w'; 5_000]);
        let line = SharedFrame::text(&[b'x'; 100]);
        let (outlet, _writer) = Outlet::new(line.len() * 3);

        assert_eq!(outlet.push_welcome(&welcome), Ok(()));
        for _ in 0..3 {
            assert_eq!(outlet.push(&line), Ok(()));
        }
        assert!(!outlet.is_kicked());
        assert_eq!(outlet.push(&line), Err(PushError::Full));
        assert_eq!(queued_items(&outlet), 4);
    }

    #[test]
    fn once_the_welcome_is_written_the_bound_applies_in_full() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let welcome = SharedFrame::text(&[b'w'; 5_000]);
            let line = SharedFrame::text(&[b'x'; 100]);
            let (outlet, mut writer) = Outlet::new(line.len() * 3);
            assert_eq!(outlet.push_welcome(&welcome), Ok(()));

            let metrics = Metrics::new();
            poll_fn(|cx| match writer.poll_flush(cx, &server, &metrics) {
                Ok(Flushed::Idle) => Poll::Ready(()),
                Ok(_) => Poll::Pending,
                Err(e) => panic!("write failed: {e}"),
            })
            .await;
            let mut received = vec![0u8; welcome.len()];
            client.read_exact(&mut received).await.expect("read");

            // The socket is not read any more, but four lines fit its
            // buffer: the queue is what refuses the fourth.
            for _ in 0..3 {
                assert_eq!(outlet.push(&line), Ok(()));
            }
            assert_eq!(outlet.push(&line), Err(PushError::Full));
        });
    }

    #[test]
    fn pongs_past_the_bound_kick_but_the_close_always_passes() {
        let (outlet, _writer) = Outlet::new(300);
        assert!(outlet.push_control(vec![0x8a; 200], false));
        assert!(!outlet.push_control(vec![0x8a; 200], false));
        assert!(outlet.is_kicked());

        assert!(outlet.push_control(vec![0x88; 200], true));
        assert_eq!(queued_items(&outlet), 2);
    }

    #[test]
    fn push_to_a_gone_writer_fails_without_counting() {
        let frame = SharedFrame::text(b"hi");
        let (outlet, writer) = Outlet::new(frame.len());
        drop(writer);
        assert_eq!(outlet.push(&frame), Err(PushError::Gone));
        assert_eq!(outlet.state.queued.load(Ordering::Acquire), 0);
    }

    #[test]
    fn writer_sends_in_order_and_nothing_after_a_close() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, writer) = Outlet::new(1 << 20);
            let frames: Vec<SharedFrame> = (0..200)
                .map(|i| SharedFrame::text(format!("frame {i}").as_bytes()))
                .collect();
            let mut expected = Vec::new();
            for frame in &frames {
                outlet.push(frame).expect("room frame");
                expected.extend_from_slice(frame.as_bytes());
            }
            assert!(outlet.push_control(b"CLOSE".to_vec(), true));
            expected.extend_from_slice(b"CLOSE");
            outlet.push(&frames[0]).expect("queued after the close");

            let metrics = Metrics::new();
            flush(writer, server, &metrics).await;

            // The writer ended after the close, so the stream ends there.
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            assert_eq!(received, expected);
            assert_eq!(metrics.snapshot().bytes_sent, expected.len() as u64);
            assert_eq!(outlet.state.queued.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn kicked_member_gets_control_frames_but_no_more_room_frames() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let frame = SharedFrame::text(b"backlog");
            let (outlet, writer) = Outlet::new(1 << 20);
            outlet.push(&frame).expect("room frame");
            outlet.mark_kicked();
            assert!(outlet.push_control(b"CLOSE 1008".to_vec(), true));

            flush(writer, server, &Metrics::new()).await;

            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            assert_eq!(received, b"CLOSE 1008");
            assert_eq!(outlet.state.queued.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn kick_mid_frame_finishes_that_frame_then_writes_only_the_close() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, mut writer) = Outlet::new(64 << 20);
            let frames: Vec<SharedFrame> = (0..64u8)
                .map(|i| SharedFrame::text(&vec![b'a' + i % 26; 100_000 + usize::from(i)]))
                .collect();
            for frame in &frames {
                outlet.push(frame).expect("room frame");
            }

            // Write until the socket is full, as with a peer that stopped
            // reading; then the member is kicked and closes.
            let metrics = Metrics::new();
            poll_fn(|cx| match writer.poll_flush(cx, &server, &metrics) {
                Ok(Flushed::Blocked) => Poll::Ready(()),
                other => panic!("the socket never filled: {other:?}"),
            })
            .await;
            assert!(writer.offset > 0 || !writer.batch.is_empty());
            outlet.mark_kicked();
            assert!(outlet.push_control(b"CLOSE".to_vec(), true));

            let writer = smol::spawn(async move { flush(writer, server, &Metrics::new()).await });
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            writer.await;

            assert!(received.ends_with(b"CLOSE"));
            let room_bytes = &received[..received.len() - 5];
            let mut whole = 0;
            let mut at = 0;
            while at < room_bytes.len() {
                let frame = frames[whole].as_bytes();
                assert_eq!(room_bytes.get(at..at + frame.len()), Some(frame));
                at += frame.len();
                whole += 1;
            }
            assert!(whole < frames.len(), "every frame was written");
            assert_eq!(outlet.state.queued.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn large_batches_survive_partial_writes() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, writer) = Outlet::new(64 << 20);
            let big = SharedFrame::text(&vec![b'y'; 60_000]);
            for _ in 0..300 {
                outlet.push(&big).expect("room frame");
            }
            assert!(outlet.push_control(Vec::new(), false));
            assert!(outlet.push_control(b"END".to_vec(), true));

            let writer = smol::spawn(async move { flush(writer, server, &Metrics::new()).await });
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            writer.await;

            assert_eq!(received.len(), 300 * big.len() + 3);
            assert!(received.ends_with(b"yyEND"));
        });
    }

    #[test]
    fn small_and_large_frames_interleaved_arrive_whole_and_in_order() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, writer) = Outlet::new(64 << 20);
            let mut expected = Vec::new();
            for round in 0..200u32 {
                let len = if round % 7 == 3 {
                    GATHER_BYTES + 5
                } else {
                    90 + round as usize
                };
                let byte = b'a' + (round % 26) as u8;
                let frame = SharedFrame::text(&vec![byte; len]);
                expected.extend_from_slice(frame.as_bytes());
                outlet.push(&frame).expect("room frame");
            }
            assert!(outlet.push_control(b"END".to_vec(), true));
            assert!(outlet.push_control(b"AFTER".to_vec(), false));
            expected.extend_from_slice(b"END");

            let writer = smol::spawn(async move { flush(writer, server, &Metrics::new()).await });
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            writer.await;

            assert_eq!(received.len(), expected.len());
            assert!(received == expected, "bytes differ from the frames pushed");
        });
    }

    #[test]
    fn a_push_wakes_an_idle_writer() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, mut writer) = Outlet::new(1 << 20);
            let pusher = outlet.clone();
            let metrics = Metrics::new();
            let mut pushed = false;
            poll_fn(|cx| match writer.poll_flush(cx, &server, &metrics) {
                Ok(Flushed::Idle) if !pushed => {
                    pushed = true;
                    assert!(pusher.push_control(b"late".to_vec(), true));
                    Poll::Pending
                }
                Ok(Flushed::Closed) => Poll::Ready(()),
                Ok(_) => Poll::Pending,
                Err(e) => panic!("write failed: {e}"),
            })
            .await;
            drop((writer, server));

            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            assert_eq!(received, b"late");
        });
    }
}
