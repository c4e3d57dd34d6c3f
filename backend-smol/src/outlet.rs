//! A member's outgoing queue and the writer task that drains it.
//!
//! The room task pushes [`SharedFrame`]s with [`Outlet::push`]; the member's
//! own connection task pushes the control frames its `Connection` produces
//! with [`Outlet::push_control`]. The queue is unbounded as a channel but
//! bounded by the bytes it holds: a push past the bound refuses the frame and
//! marks the member kicked, so the room never waits. Control frames count
//! too, so a peer that sends pings but never reads cannot pile up pongs; only
//! the final close frame is always let through.
//! One writer per member ([`run_writer`]) takes everything ready at once and
//! writes it with vectored writes, without copying the shared frames.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use async_net::TcpStream;
use futures_lite::AsyncWriteExt;
use natter_core::event::SharedFrame;
use natter_core::metrics::Metrics;

/// Most slices handed to one vectored write (Linux's IOV_MAX is 1024).
const MAX_SLICES: usize = 64;

/// Most queued items taken into one batch, so a writer that keeps finding
/// more to send still comes back to hand the written bytes back to the bound.
const MAX_BATCH_ITEMS: usize = 1024;

/// One piece of outgoing bytes, in the order it must reach the socket.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame from the room, shared with every other member's queue.
    Room(SharedFrame),
    /// Bytes from the member's own `Connection` (pongs, pings, close).
    Control {
        /// The encoded frames.
        bytes: Vec<u8>,
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

/// State shared by a member's outlet handles, its writer and its reader.
#[derive(Debug)]
struct OutletState {
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Bound on `queued`.
    limit: usize,
    /// Set once the member has been dropped for a full queue.
    kicked: AtomicBool,
}

/// The room's handle on one member's outgoing queue.
#[derive(Debug, Clone)]
pub struct Outlet {
    state: Arc<OutletState>,
    sender: Sender<Outgoing>,
    kick: Sender<()>,
}

/// The member side of an outlet: the queue to drain and the kick signal.
#[derive(Debug)]
pub struct OutletEnds {
    /// The queue the writer drains.
    pub queue: Receiver<Outgoing>,
    /// Receives a value (or closes) when the room dropped the member for a
    /// full queue.
    pub kicked: Receiver<()>,
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
    /// Creates an outlet whose room frames may hold at most `limit` bytes.
    pub fn new(limit: usize) -> (Outlet, OutletEnds) {
        let (sender, queue) = async_channel::unbounded();
        let (kick, kicked) = async_channel::bounded(1);
        let state = Arc::new(OutletState {
            queued: AtomicUsize::new(0),
            limit,
            kicked: AtomicBool::new(false),
        });
        let outlet = Outlet {
            state,
            sender,
            kick,
        };
        (outlet, OutletEnds { queue, kicked })
    }

    /// Queues a room frame for this member.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] when the frame would take the queue past its
    /// bound (the member is marked kicked and its reader told), and
    /// [`PushError::Gone`] when the member's writer has ended.
    pub fn push(&self, frame: &SharedFrame) -> Result<(), PushError> {
        if self.is_kicked() {
            return Err(PushError::Full);
        }

        let len = frame.as_bytes().len();
        let before = self.state.queued.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > self.state.limit {
            self.state.queued.fetch_sub(len, Ordering::AcqRel);
            self.mark_kicked();
            return Err(PushError::Full);
        }

        if self.sender.try_send(Outgoing::Room(frame.clone())).is_err() {
            self.state.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(PushError::Gone);
        }
        Ok(())
    }

    /// Queues control bytes from the member's own connection.
    ///
    /// Bytes that hold our close frame are always queued. Others that would
    /// take the queue past its bound are dropped and the member is marked
    /// kicked, as for a room frame. Returns `false` when the bytes were not
    /// queued.
    pub fn push_control(&self, bytes: Vec<u8>, closes: bool) -> bool {
        let len = bytes.len();
        let before = self.state.queued.fetch_add(len, Ordering::AcqRel);
        if !closes && before.saturating_add(len) > self.state.limit {
            self.state.queued.fetch_sub(len, Ordering::AcqRel);
            self.mark_kicked();
            return false;
        }

        let queued = self.sender.try_send(Outgoing::Control { bytes, closes });
        if queued.is_err() {
            self.state.queued.fetch_sub(len, Ordering::AcqRel);
        }
        queued.is_ok()
    }

    /// Marks the member kicked: the writer skips room frames from now on and
    /// the reader is told to close with 1008.
    pub fn mark_kicked(&self) {
        self.state.kicked.store(true, Ordering::Release);
        let _ = self.kick.try_send(());
    }

    /// Returns whether the member was dropped for a full queue.
    pub fn is_kicked(&self) -> bool {
        self.state.kicked.load(Ordering::Acquire)
    }
}

/// Writes everything queued for a member to `stream` until the queue closes
/// or a close frame has been written.
///
/// Every wakeup takes all the items ready at that moment and writes them with
/// as few vectored writes as the kernel allows, then flushes once. Room
/// frames queued after the member was kicked are dropped unwritten.
///
/// # Errors
///
/// Fails when the socket write fails; the caller ends the connection.
pub async fn run_writer(
    mut stream: TcpStream,
    outlet: Outlet,
    queue: Receiver<Outgoing>,
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let mut batch: Vec<Outgoing> = Vec::new();
    loop {
        let Ok(first) = queue.recv().await else {
            return Ok(());
        };

        // Take everything ready now, stopping after a close frame.
        let mut closes = take_item(&mut batch, first, &outlet);
        while !closes && batch.len() < MAX_BATCH_ITEMS {
            match queue.try_recv() {
                Ok(item) => closes = take_item(&mut batch, item, &outlet),
                Err(_) => break,
            }
        }

        let batch_bytes: usize = batch.iter().map(|item| item.bytes().len()).sum();
        let written = write_batch(&mut stream, &batch).await;
        batch.clear();
        outlet.state.queued.fetch_sub(batch_bytes, Ordering::AcqRel);
        metrics.bytes_sent(written?);
        stream.flush().await?;

        if closes {
            return Ok(());
        }
    }
}

/// Adds `item` to `batch` unless it is a room frame for a kicked member, and
/// returns whether it holds a close frame.
fn take_item(batch: &mut Vec<Outgoing>, item: Outgoing, outlet: &Outlet) -> bool {
    match item {
        Outgoing::Room(frame) if outlet.is_kicked() => {
            let len = frame.as_bytes().len();
            outlet.state.queued.fetch_sub(len, Ordering::AcqRel);
            false
        }
        Outgoing::Room(_) => {
            batch.push(item);
            false
        }
        Outgoing::Control { closes, .. } => {
            batch.push(item);
            closes
        }
    }
}

/// Writes every item of `batch` in order and returns the bytes written.
async fn write_batch(stream: &mut TcpStream, batch: &[Outgoing]) -> io::Result<usize> {
    let mut total = 0;
    let mut index = 0;
    let mut offset = 0;
    while index < batch.len() {
        // Gather up to MAX_SLICES pieces, the first one past what was written.
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for (i, item) in batch[index..].iter().take(MAX_SLICES).enumerate() {
            let bytes = item.bytes();
            let start = if i == 0 { offset } else { 0 };
            slices[count] = IoSlice::new(&bytes[start.min(bytes.len())..]);
            count += 1;
        }

        let mut written = stream.write_vectored(&slices[..count]).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        total += written;

        // Advance past whole items, then into the partly written one.
        while written > 0 && index < batch.len() {
            let left = batch[index].bytes().len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
        while index < batch.len() && batch[index].bytes().len() == offset {
            index += 1;
            offset = 0;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use futures_lite::AsyncReadExt;

    use super::*;

    /// Returns a connected pair of loopback streams.
    async fn stream_pair() -> (TcpStream, TcpStream) {
        let listener = async_net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    #[test]
    fn push_past_the_bound_marks_the_member_kicked() {
        let frame = SharedFrame::text(&[b'x'; 100]);
        let (outlet, ends) = Outlet::new(frame.len() * 3);
        for _ in 0..3 {
            assert_eq!(outlet.push(&frame), Ok(()));
        }

        assert_eq!(outlet.push(&frame), Err(PushError::Full));
        assert!(outlet.is_kicked());
        assert!(ends.kicked.try_recv().is_ok());
        assert_eq!(ends.queue.len(), 3);
    }

    #[test]
    fn pongs_past_the_bound_kick_but_the_close_always_passes() {
        let (outlet, ends) = Outlet::new(300);
        assert!(outlet.push_control(vec![0x8a; 200], false));
        assert!(!outlet.push_control(vec![0x8a; 200], false));
        assert!(outlet.is_kicked());

        assert!(outlet.push_control(vec![0x88; 200], true));
        assert_eq!(ends.queue.len(), 2);
    }

    #[test]
    fn push_to_a_gone_writer_fails_without_counting() {
        let frame = SharedFrame::text(b"hi");
        let (outlet, ends) = Outlet::new(frame.len());
        drop(ends);
        assert_eq!(outlet.push(&frame), Err(PushError::Gone));
        assert_eq!(outlet.state.queued.load(Ordering::Acquire), 0);
    }

    #[test]
    fn writer_sends_in_order_and_nothing_after_a_close() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, ends) = Outlet::new(1 << 20);
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

            let metrics = Arc::new(Metrics::new());
            let written = run_writer(server, outlet.clone(), ends.queue, Arc::clone(&metrics));
            written.await.expect("writer");

            // The writer ended after the close, so the stream ends there.
            drop(outlet);
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            assert_eq!(received, expected);
            assert_eq!(metrics.snapshot().bytes_sent, expected.len() as u64);
        });
    }

    #[test]
    fn kicked_member_gets_control_frames_but_no_more_room_frames() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let frame = SharedFrame::text(b"backlog");
            let (outlet, ends) = Outlet::new(1 << 20);
            outlet.push(&frame).expect("room frame");
            outlet.mark_kicked();
            assert!(outlet.push_control(b"CLOSE 1008".to_vec(), true));

            let metrics = Arc::new(Metrics::new());
            run_writer(server, outlet.clone(), ends.queue, metrics)
                .await
                .expect("writer");

            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            assert_eq!(received, b"CLOSE 1008");
            assert_eq!(outlet.state.queued.load(Ordering::Acquire), 0);
        });
    }

    #[test]
    fn large_batches_survive_partial_writes() {
        smol::block_on(async {
            let (server, mut client) = stream_pair().await;
            let (outlet, ends) = Outlet::new(64 << 20);
            let big = SharedFrame::text(&vec![b'y'; 60_000]);
            for _ in 0..300 {
                outlet.push(&big).expect("room frame");
            }
            assert!(outlet.push_control(Vec::new(), false));
            assert!(outlet.push_control(b"END".to_vec(), true));

            let metrics = Arc::new(Metrics::new());
            let writer = smol::spawn(run_writer(server, outlet.clone(), ends.queue, metrics));
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.expect("read");
            writer.await.expect("writer");

            assert_eq!(received.len(), 300 * big.len() + 3);
            assert!(received.ends_with(b"yyEND"));
        });
    }
}
