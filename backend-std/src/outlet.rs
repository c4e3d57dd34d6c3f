//! A member's outgoing queue and the writer thread that drains it.
//!
//! Room owners push whole frames into an [`Outlet`] while they hold their
//! room's lock; pushing never blocks and never writes a socket. Only the
//! member's own writer thread ([`run_writer`]) writes its socket, taking
//! everything queued at once and sending it with one write, so a slow peer
//! holds up nobody but itself.
//!
//! The HTTP response that answers the upgrade request is the first thing
//! an outlet takes and the one thing a kick never drops: no frame can be
//! queued before it, and [`Outlet::discard`] keeps it, so the peer always
//! reads the 101 before any frame, a close 1008 included.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use natter_core::event::SharedFrame;
use natter_core::metrics::Metrics;

/// Most chunks handed to one vectored write (well under every `IOV_MAX`).
const MAX_BATCH: usize = 64;

/// Largest batch copied into one buffer before it is written.
const MAX_GATHER_BYTES: usize = 64 * 1024;

/// Longest a writer blocks in one write before it checks whether it should
/// give up on a peer that stopped reading after its close frame.
pub const WRITE_TICK: Duration = Duration::from_secs(1);

/// One piece of output: the HTTP response, the joiner's welcome, a room
/// frame shared by every member's queue, or frames owned by this connection
/// (control frames).
#[derive(Debug, Clone)]
pub enum Chunk {
    /// The answer to the upgrade request (101, or a refusal): always the
    /// first chunk, never discarded, and not counted toward the bound, which
    /// is for the frames a member's reading speed lets pile up.
    Response(Vec<u8>),
    /// The joiner's welcome: its roster grows with the room, not with how
    /// slowly the member reads, so it is not counted toward the bound either.
    Welcome(SharedFrame),
    /// A complete frame encoded once for the whole room.
    Shared(SharedFrame),
    /// Frames only this connection sends.
    Owned(Vec<u8>),
}

impl Chunk {
    /// Returns the bytes to write.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Shared(frame) | Chunk::Welcome(frame) => frame.as_bytes(),
            Chunk::Owned(bytes) | Chunk::Response(bytes) => bytes,
        }
    }

    /// Returns how many of its bytes count toward the queue's bound.
    fn counted_len(&self) -> usize {
        match self {
            Chunk::Response(_) | Chunk::Welcome(_) => 0,
            Chunk::Shared(_) | Chunk::Owned(_) => self.bytes().len(),
        }
    }
}

/// Returns how many bytes of `chunks` count toward the queue's bound, which
/// is what [`Outlet::written`] must be told once they are written.
fn counted_bytes(chunks: &[Chunk]) -> usize {
    chunks.iter().map(Chunk::counted_len).sum()
}

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue would pass its byte bound; the member must be dropped.
    Full,
    /// The connection takes no frames: its response is not queued yet, its
    /// close frame is, or its writer has stopped.
    Closed,
}

/// Where an outlet is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing is queued until the response to the upgrade request is, so
    /// no frame can reach the peer before it.
    Handshake,
    /// Frames are accepted.
    Open,
    /// The final chunk (a close frame) is queued; nothing more is accepted.
    Closing,
    /// The reader has finished; the writer drains what is left and stops.
    Finished,
    /// The socket failed or the writer gave up; everything is dropped.
    Dead,
}

/// What a writer takes from [`Outlet::take_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// Chunks were moved into the caller's list; write them.
    Ready,
    /// Nothing is left to write, ever: the writer should stop.
    Done,
    /// The close frame is out but the reader has not finished in time: the
    /// writer should shut the socket down to wake it.
    Abandoned,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Chunk>,
    /// Bytes queued plus bytes taken by the writer and not yet written,
    /// counting only those the bound applies to.
    bytes: usize,
    phase: Phase,
    /// Whether the writer sleeps on the condition variable; a wake-up is a
    /// system call, so pushes behind a busy writer skip it.
    writer_waiting: bool,
}

/// A bounded, never-blocking queue of output for one connection.
///
/// The connection's thread first queues the answer to the upgrade request
/// with [`upgrade`](Outlet::upgrade) or [`refuse`](Outlet::refuse). After an
/// upgrade, the room queues the joiner's welcome with
/// [`push_welcome`](Outlet::push_welcome) (never refused for its size), then
/// producers call [`push_frame`](Outlet::push_frame) (room frames,
/// bounded by the byte limit) and [`push_control`](Outlet::push_control) (the
/// connection's own frames, bounded too but for the close frame). The writer
/// loops on [`take_batch`](Outlet::take_batch), writes, then reports with
/// [`written`](Outlet::written). The reader ends it with
/// [`finish`](Outlet::finish).
#[derive(Debug)]
pub struct Outlet {
    state: Mutex<State>,
    wake: Condvar,
    limit: usize,
}

impl Outlet {
    /// Creates an empty outlet that holds at most `limit` bytes of frames
    /// and takes none before the response to the upgrade request.
    pub fn new(limit: usize) -> Outlet {
        Outlet {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                phase: Phase::Handshake,
                writer_waiting: false,
            }),
            wake: Condvar::new(),
            limit,
        }
    }

    /// Locks the state; a panic elsewhere cannot leave it inconsistent, as
    /// every update is a few plain assignments.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues the 101 response that accepts the upgrade, after which frames
    /// are taken; it is written before any of them and no kick drops it.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] when a response was already queued or the
    /// writer has stopped.
    pub fn upgrade(&self, response: Vec<u8>) -> Result<(), PushError> {
        self.answer(response, Phase::Open)
    }

    /// Queues an HTTP refusal as the connection's last bytes: no frame
    /// follows it.
    ///
    /// # Errors
    ///
    /// As for [`upgrade`](Outlet::upgrade).
    pub fn refuse(&self, response: Vec<u8>) -> Result<(), PushError> {
        self.answer(response, Phase::Closing)
    }

    /// Queues the answer to the upgrade request and moves on to `next`.
    fn answer(&self, response: Vec<u8>, next: Phase) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.phase != Phase::Handshake {
            return Err(PushError::Closed);
        }

        state.phase = next;
        if !response.is_empty() {
            state.queue.push_back(Chunk::Response(response));
        }
        self.wake_writer(&mut state);
        Ok(())
    }

    /// Queues the joiner's welcome, however large: the roster of a big room
    /// may pass the bound by itself, and refusing it would lock every new
    /// joiner out. It does not count toward the bound, which applies in
    /// full to every frame after it.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] before the upgrade and once the connection has
    /// queued its close frame or stopped.
    pub fn push_welcome(&self, frame: SharedFrame) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.phase != Phase::Open {
            return Err(PushError::Closed);
        }

        state.queue.push_back(Chunk::Welcome(frame));
        self.wake_writer(&mut state);
        Ok(())
    }

    /// Queues a room frame.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] when the frame would take the queue past its
    /// bound (nothing is queued), [`PushError::Closed`] before the upgrade
    /// and once the connection has queued its close frame or stopped.
    pub fn push_frame(&self, frame: SharedFrame) -> Result<(), PushError> {
        if self.push_frame_quietly(frame)? {
            self.notify();
        }
        Ok(())
    }

    /// Queues a room frame like [`push_frame`](Outlet::push_frame) but
    /// leaves a sleeping writer asleep, returning `true` when the caller
    /// must [`notify`](Outlet::notify) it once done pushing.
    ///
    /// A reader delivering a burst of lines wakes each writer once at the
    /// end, so on one core a writer finds several frames to send at once.
    ///
    /// # Errors
    ///
    /// As for [`push_frame`](Outlet::push_frame).
    pub fn push_frame_quietly(&self, frame: SharedFrame) -> Result<bool, PushError> {
        let mut state = self.lock();
        if state.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        if state.bytes.saturating_add(frame.len()) > self.limit {
            return Err(PushError::Full);
        }

        state.bytes += frame.len();
        state.queue.push_back(Chunk::Shared(frame));
        Ok(std::mem::take(&mut state.writer_waiting))
    }

    /// Wakes the writer after a [`push_frame_quietly`](Outlet::push_frame_quietly)
    /// that asked for it.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Queues the connection's own frames; `closes` marks the chunk that
    /// holds its close frame, after which nothing more is queued.
    ///
    /// The close frame is always taken, and so is any chunk when the queue
    /// is empty; otherwise the byte bound applies, so a peer that sends
    /// pings but reads nothing cannot grow its queue of pongs without limit.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] past the bound, [`PushError::Closed`] before the
    /// upgrade, when a close frame was already queued or when the writer
    /// has stopped.
    pub fn push_control(&self, bytes: Vec<u8>, closes: bool) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.phase != Phase::Open {
            return Err(PushError::Closed);
        }
        let over = state.bytes.saturating_add(bytes.len()) > self.limit;
        if over && !closes && state.bytes > 0 {
            return Err(PushError::Full);
        }

        if closes {
            state.phase = Phase::Closing;
        }
        if !bytes.is_empty() {
            state.bytes = state.bytes.saturating_add(bytes.len());
            state.queue.push_back(Chunk::Owned(bytes));
        }
        self.wake_writer(&mut state);
        Ok(())
    }

    /// Drops every queued frame not yet taken by the writer, so a member
    /// being dropped for a full queue gets its close frame next.
    ///
    /// A response still queued stays: the peer must read the 101 before
    /// the close frame, or it sees a frame where it waits for HTTP.
    pub fn discard(&self) {
        let mut state = self.lock();
        let dropped: usize = state.queue.iter().map(Chunk::counted_len).sum();
        state.bytes = state.bytes.saturating_sub(dropped);
        state
            .queue
            .retain(|chunk| matches!(chunk, Chunk::Response(_)));
    }

    /// Tells the writer that nothing more will be pushed: it writes what is
    /// queued and stops.
    pub fn finish(&self) {
        let mut state = self.lock();
        if state.phase != Phase::Dead {
            state.phase = Phase::Finished;
        }
        self.wake_writer(&mut state);
    }

    /// Marks the outlet dead: queued chunks are dropped and pushes fail.
    fn kill(&self) {
        let mut state = self.lock();
        state.phase = Phase::Dead;
        state.queue.clear();
        state.bytes = 0;
        self.wake_writer(&mut state);
    }

    /// Says whether the connection has queued its close frame or finished,
    /// so a stalled writer may give up.
    fn is_closing(&self) -> bool {
        matches!(
            self.lock().phase,
            Phase::Closing | Phase::Finished | Phase::Dead
        )
    }

    /// Returns a copy of every chunk queued, without waiting.
    #[cfg(test)]
    pub fn snapshot(&self) -> Vec<Vec<u8>> {
        self.lock()
            .queue
            .iter()
            .map(|c| c.bytes().to_vec())
            .collect()
    }

    /// Returns the bytes queued and in flight.
    #[cfg(test)]
    fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Waits until there is something to write, then moves up to
    /// [`MAX_BATCH`] chunks into `into`.
    ///
    /// Once the close frame is out, it waits at most `close_wait` for the
    /// reader to finish; a reader still blocked then is waiting on a peer
    /// that will not answer, and [`Batch::Abandoned`] says to cut it off.
    pub fn take_batch(&self, into: &mut Vec<Chunk>, close_wait: Duration) -> Batch {
        let mut state = self.lock();
        let mut closed_at: Option<Instant> = None;
        loop {
            if state.phase == Phase::Dead {
                return Batch::Done;
            }
            if !state.queue.is_empty() {
                let count = state.queue.len().min(MAX_BATCH);
                into.extend(state.queue.drain(..count));
                return Batch::Ready;
            }

            state = match state.phase {
                Phase::Finished | Phase::Dead => return Batch::Done,
                Phase::Handshake | Phase::Open => {
                    state.writer_waiting = true;
                    self.wake.wait(state).unwrap_or_else(|p| p.into_inner())
                }
                Phase::Closing => {
                    let since = *closed_at.get_or_insert_with(Instant::now);
                    let left = close_wait.saturating_sub(since.elapsed());
                    if left.is_zero() {
                        return Batch::Abandoned;
                    }
                    state.writer_waiting = true;
                    match self.wake.wait_timeout(state, left) {
                        Ok((guard, _)) => guard,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
            };
        }
    }

    /// Wakes the writer if it sleeps.
    fn wake_writer(&self, state: &mut State) {
        if state.writer_waiting {
            state.writer_waiting = false;
            self.wake.notify_one();
        }
    }

    /// Records that chunks taken by the writer are on the wire; `count` is
    /// their [`counted_bytes`].
    pub fn written(&self, count: usize) {
        let mut state = self.lock();
        state.bytes = state.bytes.saturating_sub(count);
    }
}

/// Drains `outlet` into `stream` until the reader finishes or the socket
/// fails; on failure the socket is shut down so the reader wakes too.
///
/// `close_wait` bounds how long a write may make no progress once the
/// connection is closing (a peer that never reads again), and how long the
/// reader may take to finish once the close frame is out.
pub fn run_writer(outlet: &Outlet, stream: &TcpStream, close_wait: Duration, metrics: &Metrics) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    if let Err(e) = stream.set_write_timeout(Some(WRITE_TICK)) {
        log::debug!("cannot set a write timeout: {e}");
    }

    loop {
        match outlet.take_batch(&mut batch, close_wait) {
            Batch::Ready => {}
            Batch::Done => return,
            Batch::Abandoned => {
                log::debug!("no close reply in time; shutting the socket down");
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }

        let total: usize = batch.iter().map(|c| c.bytes().len()).sum();
        let result = write_batch(outlet, stream, &batch, total, close_wait);
        outlet.written(counted_bytes(&batch));
        batch.clear();

        if let Err(e) = result {
            log::debug!("write failed: {e}");
            outlet.kill();
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        metrics.bytes_sent(total);
    }
}

/// Writes every chunk of `batch`, `total` bytes in all, with as few writes
/// as the socket allows.
///
/// A batch of small frames is first gathered into one buffer: the kernel
/// copies one long slice far faster than dozens of short ones, and the copy
/// here is of a few kilobytes. A larger batch goes out as a vectored write.
fn write_batch(
    outlet: &Outlet,
    stream: &TcpStream,
    batch: &[Chunk],
    total: usize,
    give_up_after: Duration,
) -> io::Result<()> {
    if batch.len() > 1 && total <= MAX_GATHER_BYTES {
        let mut gathered = Vec::with_capacity(total);
        for chunk in batch {
            gathered.extend_from_slice(chunk.bytes());
        }
        return write_slices(
            outlet,
            stream,
            &mut [IoSlice::new(&gathered)],
            give_up_after,
        );
    }
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|c| IoSlice::new(c.bytes())).collect();
    write_slices(outlet, stream, &mut slices, give_up_after)
}

/// Writes all of `slices`, retrying while the socket is full unless the
/// connection is closing and has made no progress for `give_up_after`.
fn write_slices(
    outlet: &Outlet,
    mut stream: &TcpStream,
    slices: &mut [IoSlice<'_>],
    give_up_after: Duration,
) -> io::Result<()> {
    let mut remaining = slices;
    let mut stalled_since: Option<Instant> = None;

    while !remaining.is_empty() {
        match stream.write_vectored(remaining) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(count) => {
                stalled_since = None;
                IoSlice::advance_slices(&mut remaining, count);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if outlet.is_closing() && since.elapsed() >= give_up_after {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Read;
    use std::sync::Arc;

    /// Returns a frame of exactly `len` bytes (a 2-byte header, then text).
    fn frame(len: usize) -> SharedFrame {
        SharedFrame::text(&vec![b'x'; len - 2])
    }

    /// Returns an outlet of bound `limit` past its upgrade, with nothing
    /// queued.
    fn opened(limit: usize) -> Outlet {
        let outlet = Outlet::new(limit);
        assert_eq!(outlet.upgrade(Vec::new()), Ok(()));
        outlet
    }

    /// Takes everything queued, as the writer would, and returns its bytes.
    fn take_all(outlet: &Outlet) -> Vec<Vec<u8>> {
        let mut batch = Vec::new();
        outlet.take_batch(&mut batch, Duration::ZERO);
        batch.iter().map(|chunk| chunk.bytes().to_vec()).collect()
    }

    /// No frame can be queued ahead of the 101, which then goes first.
    #[test]
    fn nothing_is_queued_before_the_response() {
        let outlet = Outlet::new(100);
        assert_eq!(outlet.push_frame(frame(3)), Err(PushError::Closed));
        assert_eq!(
            outlet.push_control(b"pong".to_vec(), false),
            Err(PushError::Closed)
        );

        assert_eq!(outlet.upgrade(b"101".to_vec()), Ok(()));
        assert_eq!(outlet.upgrade(b"101".to_vec()), Err(PushError::Closed));
        assert_eq!(outlet.push_frame(frame(3)), Ok(()));
        assert_eq!(
            take_all(&outlet),
            [b"101".to_vec(), frame(3).as_bytes().to_vec()]
        );
    }

    /// A kick drops the frames but not the 101 still queued before them.
    #[test]
    fn a_kick_keeps_the_response_ahead_of_the_close_frame() {
        let outlet = Outlet::new(10);
        outlet.upgrade(b"HTTP/1.1 101".to_vec()).unwrap();
        outlet.push_frame(frame(10)).unwrap();
        assert_eq!(outlet.push_frame(frame(3)), Err(PushError::Full));

        outlet.discard();
        outlet.push_control(b"close".to_vec(), true).unwrap();
        assert_eq!(outlet.queued_bytes(), 5);
        assert_eq!(
            take_all(&outlet),
            [b"HTTP/1.1 101".to_vec(), b"close".to_vec()]
        );
    }

    /// The welcome goes out whatever its size and the bound applies to what follows.
    #[test]
    fn a_welcome_over_the_bound_is_queued_and_not_counted() {
        let outlet = opened(10);
        let welcome = frame(50);
        assert_eq!(outlet.push_welcome(welcome.clone()), Ok(()));
        assert_eq!(outlet.queued_bytes(), 0);
        assert_eq!(outlet.push_frame(frame(10)), Ok(()));
        assert_eq!(outlet.push_frame(frame(2)), Err(PushError::Full));

        let mut batch = Vec::new();
        outlet.take_batch(&mut batch, Duration::ZERO);
        assert_eq!(batch[0].bytes(), welcome.as_bytes());
        outlet.written(counted_bytes(&batch));
        assert_eq!(outlet.queued_bytes(), 0);
        assert_eq!(outlet.push_frame(frame(10)), Ok(()));
    }

    /// A refused upgrade sends its HTTP answer and nothing after it.
    #[test]
    fn a_refusal_is_the_last_chunk() {
        let outlet = Outlet::new(10);
        outlet.refuse(b"HTTP/1.1 409".to_vec()).unwrap();
        assert_eq!(outlet.push_frame(frame(3)), Err(PushError::Closed));
        assert_eq!(outlet.upgrade(b"101".to_vec()), Err(PushError::Closed));

        outlet.finish();
        assert_eq!(take_all(&outlet), [b"HTTP/1.1 409".to_vec()]);
        let mut batch = Vec::new();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Done);
    }

    #[test]
    fn frames_past_the_bound_are_refused_whole() {
        let outlet = opened(10);
        assert_eq!(outlet.push_frame(frame(6)), Ok(()));
        assert_eq!(outlet.push_frame(frame(5)), Err(PushError::Full));
        assert_eq!(outlet.push_frame(frame(4)), Ok(()));
        assert_eq!(outlet.queued_bytes(), 10);
    }

    #[test]
    fn control_bytes_are_bounded_but_the_close_frame_is_not() {
        let outlet = opened(10);
        assert_eq!(outlet.push_control(vec![0; 50], false), Ok(()));
        assert_eq!(outlet.push_control(vec![0; 1], false), Err(PushError::Full));
        assert_eq!(outlet.push_control(vec![0; 4], true), Ok(()));
        assert_eq!(outlet.queued_bytes(), 54);
    }

    #[test]
    fn nothing_is_queued_after_the_close_frame() {
        let outlet = opened(100);
        assert_eq!(outlet.push_control(b"close".to_vec(), true), Ok(()));
        assert_eq!(outlet.push_frame(frame(2)), Err(PushError::Closed));
        assert_eq!(
            outlet.push_control(b"pong".to_vec(), false),
            Err(PushError::Closed)
        );

        let mut batch = Vec::new();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Ready);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].bytes(), b"close");
    }

    #[test]
    fn bytes_count_until_written() {
        let outlet = opened(10);
        outlet.push_frame(frame(8)).unwrap();
        let mut batch = Vec::new();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Ready);
        assert_eq!(outlet.push_frame(frame(8)), Err(PushError::Full));
        outlet.written(8);
        assert_eq!(outlet.push_frame(frame(8)), Ok(()));
    }

    #[test]
    fn discard_leaves_room_for_the_close_frame() {
        let outlet = opened(10);
        outlet.push_frame(frame(10)).unwrap();
        outlet.discard();
        assert_eq!(outlet.queued_bytes(), 0);
        outlet.push_control(b"bye".to_vec(), true).unwrap();

        let mut batch = Vec::new();
        outlet.take_batch(&mut batch, Duration::ZERO);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].bytes(), b"bye");
    }

    #[test]
    fn writer_gives_up_on_a_reader_that_never_finishes_closing() {
        let outlet = opened(100);
        outlet.push_control(b"close".to_vec(), true).unwrap();
        let mut batch = Vec::new();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Ready);
        batch.clear();
        assert_eq!(
            outlet.take_batch(&mut batch, Duration::ZERO),
            Batch::Abandoned
        );

        outlet.finish();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Done);
    }

    #[test]
    fn finish_ends_the_writer_after_the_queue() {
        let outlet = opened(100);
        outlet.push_frame(frame(3)).unwrap();
        outlet.finish();
        let mut batch = Vec::new();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Ready);
        batch.clear();
        assert_eq!(outlet.take_batch(&mut batch, Duration::ZERO), Batch::Done);
    }

    #[test]
    fn writer_wakes_for_a_push_from_another_thread() {
        let outlet = Arc::new(opened(100));
        let pusher = Arc::clone(&outlet);
        let handle = std::thread::spawn(move || {
            pusher.push_frame(frame(2)).unwrap();
            pusher.finish();
        });

        let mut batch = Vec::new();
        let mut seen = 0;
        while outlet.take_batch(&mut batch, Duration::ZERO) == Batch::Ready {
            seen += batch.len();
            batch.clear();
        }
        handle.join().unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn run_writer_sends_small_and_large_frames_whole_and_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();

        let outlet = Arc::new(opened(64 << 20));
        let mut expected = Vec::new();
        for round in 0..300usize {
            let len = if round % 9 == 4 {
                MAX_GATHER_BYTES + 7
            } else {
                70 + round
            };
            let frame = SharedFrame::text(&vec![b'a' + (round % 26) as u8; len]);
            expected.extend_from_slice(frame.as_bytes());
            outlet.push_frame(frame).unwrap();
        }
        outlet.finish();

        let writer_outlet = Arc::clone(&outlet);
        let writer = std::thread::spawn(move || {
            run_writer(
                &writer_outlet,
                &server,
                Duration::from_secs(5),
                &Metrics::new(),
            );
            drop(server);
        });
        let mut received = Vec::new();
        (&client).read_to_end(&mut received).unwrap();
        writer.join().unwrap();

        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes differ from the frames pushed");
    }
}
