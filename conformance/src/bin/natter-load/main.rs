//! natter-load: a load generator for a live natter server (or any server
//! speaking the natter protocol, such as the comparison peers).
//!
//! Modes:
//! - `fanout`: N members in one room, S of them sending at full speed;
//!   deliveries a second, send-to-delivery latency, seq gaps.
//! - `rooms`: K rooms of M members each, the same figures.
//! - `echo`: C connections to `/echo`, messages a second and latency.
//! - `idle`: N members held open; the server's RSS per connection.
//! - `churn`: joins and leaves a second.
//!
//! With `--server-pid` it also reads the server's CPU time (and RSS) from
//! /proc, so CPU per message can be compared when the generator, not the
//! server, is the bottleneck. It runs on one thread: pin it with `taskset`
//! to a core the server does not use. Every frame it sends is built once
//! and patched in place; it parses no JSON, only a few fields by position.

mod stats;
mod wire;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::{LocalExecutor, Timer};

use stats::Histogram;
use wire::PrebuiltFrame;

/// Bytes of the fixed payload prefix: `L`, 16 hex digits of send time in
/// nanoseconds since the run began, 4 hex digits of the sender's index.
const STAMP_LEN: usize = 21;

#[derive(Parser)]
#[command(about = "Load generator for natter servers: fan-out, rooms, echo, idle, churn")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args, Clone)]
struct Common {
    /// Server address, host:port (only servers you run yourself).
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: String,
    /// The server's process id, to report its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

#[derive(Subcommand)]
enum Mode {
    /// One room of N members, S of them sending.
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Members in the room.
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Members that send.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Chat line size in bytes (at least 21).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Lines a sender may have in flight before its own comes back.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Lines a second per sender; 0 means as fast as the window allows.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// K rooms of M members, S senders in each.
    Rooms {
        #[command(flatten)]
        common: Common,
        /// Rooms.
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        /// Members per room.
        #[arg(long, default_value_t = 10)]
        members: usize,
        /// Senders per room.
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Chat line size in bytes (at least 21).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Lines a sender may have in flight.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Lines a second per sender; 0 means as fast as the window allows.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// C connections to /echo.
    Echo {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Message size in bytes (at least 21).
        #[arg(long, default_value_t = 20)]
        size: usize,
        /// Messages each connection keeps in flight.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Send each connection's window as one write and wait for all of
        /// it to come back before the next, as a client flushing several
        /// queued messages at once does.
        #[arg(long)]
        burst: bool,
    },
    /// N idle members held open; reports the server's RSS per member.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Members to hold.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Members per room.
        #[arg(long, default_value_t = 100)]
        room_size: usize,
    },
    /// Members joining and leaving as fast as C loops can.
    Churn {
        #[command(flatten)]
        common: Common,
        /// Concurrent join/leave loops.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Rooms the loops spread over.
        #[arg(long, default_value_t = 4)]
        rooms: usize,
    },
}

/// Figures every task adds to while the run measures.
struct Run {
    started: Instant,
    measuring: Cell<bool>,
    stopping: Cell<bool>,
    joined: Cell<usize>,
    failed: Cell<usize>,
    deliveries: Cell<u64>,
    sent: Cell<u64>,
    seq_gaps: Cell<u64>,
    disconnects: Cell<u64>,
    latency: RefCell<Histogram>,
}

impl Run {
    fn new() -> Rc<Run> {
        Rc::new(Run {
            started: Instant::now(),
            measuring: Cell::new(false),
            stopping: Cell::new(false),
            joined: Cell::new(0),
            failed: Cell::new(0),
            deliveries: Cell::new(0),
            sent: Cell::new(0),
            seq_gaps: Cell::new(0),
            disconnects: Cell::new(0),
            latency: RefCell::new(Histogram::new()),
        })
    }

    fn nanos(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    fn bump(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }
}

fn main() {
    let cli = Cli::parse();
    let executor = LocalExecutor::new();
    let outcome = smol::block_on(executor.run(run_mode(&executor, cli.mode)));
    if let Err(message) = outcome {
        eprintln!("natter-load: {message}");
        std::process::exit(1);
    }
    // Open sockets are simply dropped: the figures are already printed.
    std::process::exit(0);
}

async fn run_mode(executor: &LocalExecutor<'_>, mode: Mode) -> Result<(), String> {
    match mode {
        Mode::Fanout {
            common,
            members,
            senders,
            size,
            window,
            rate,
        } => {
            let shape = RoomShape {
                rooms: 1,
                members,
                senders,
                size,
                window,
                rate,
            };
            chat_load(executor, &common, shape, "fanout").await
        }
        Mode::Rooms {
            common,
            rooms,
            members,
            senders,
            size,
            window,
            rate,
        } => {
            let shape = RoomShape {
                rooms,
                members,
                senders,
                size,
                window,
                rate,
            };
            chat_load(executor, &common, shape, "rooms").await
        }
        Mode::Echo {
            common,
            connections,
            size,
            window,
            burst,
        } => {
            let shape = EchoShape {
                connections,
                size,
                window: window.max(1),
                burst,
            };
            echo_load(executor, &common, shape).await
        }
        Mode::Idle {
            common,
            connections,
            room_size,
        } => idle_load(executor, &common, connections, room_size).await,
        Mode::Churn {
            common,
            concurrency,
            rooms,
        } => churn_load(executor, &common, concurrency, rooms).await,
    }
}

#[derive(Clone, Copy)]
struct RoomShape {
    rooms: usize,
    members: usize,
    senders: usize,
    size: usize,
    window: usize,
    rate: f64,
}

/// Server CPU and RSS at one moment, when a pid is known.
struct ServerSample {
    cpu: Option<Duration>,
    rss_kib: Option<u64>,
}

fn sample_server(common: &Common) -> ServerSample {
    ServerSample {
        cpu: common.server_pid.and_then(stats::process_cpu),
        rss_kib: common.server_pid.and_then(stats::process_rss_kib),
    }
}

fn join_path(room: &str, member: usize, tag: &str) -> String {
    format!("/joinRoom?user_name=load{member}&room_code={room}&session_id={tag}{member:08}")
}

/// Joins every member, starts the senders once all are in, measures for
/// the duration and prints the figures.
async fn chat_load(
    executor: &LocalExecutor<'_>,
    common: &Common,
    shape: RoomShape,
    mode: &str,
) -> Result<(), String> {
    if shape.size < STAMP_LEN {
        return Err(format!("--size must be at least {STAMP_LEN}"));
    }
    let run = Run::new();
    let tag = format!("r{:x}", fastrand::u32(..));
    let total = shape.rooms * shape.members;

    for room_index in 0..shape.rooms {
        let room = format!("bench-{tag}-{room_index}");
        for member in 0..shape.members {
            let index = room_index * shape.members + member;
            let sender = (member < shape.senders).then_some(index);
            let path = join_path(&room, index, &tag);
            let task = chat_member(run.clone(), common.server.clone(), path, sender, shape);
            executor.spawn(task).detach();
        }
    }

    wait_for_joins(&run, total).await?;
    let figures = measure(&run, common).await;

    println!(
        "mode={mode} rooms={} members={} senders={} size={} window={}",
        shape.rooms, shape.members, shape.senders, shape.size, shape.window
    );
    let seconds = figures.elapsed.as_secs_f64();
    let deliveries = figures.deliveries as f64;
    println!("deliveries/s: {:.0}", deliveries / seconds);
    println!("lines in/s: {:.0}", figures.sent as f64 / seconds);
    print_latency(&run);
    println!("seq gaps: {}", run.seq_gaps.get());
    println!("disconnects: {}", run.disconnects.get());
    print_server_cpu(&figures, "delivery", figures.deliveries);
    Ok(())
}

async fn wait_for_joins(run: &Run, total: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.joined.get() + run.failed.get() < total {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {total} members joined in 60 s",
                run.joined.get()
            ));
        }
        Timer::after(Duration::from_millis(10)).await;
    }
    if run.failed.get() > 0 {
        return Err(format!(
            "{} of {total} members could not join",
            run.failed.get()
        ));
    }
    Ok(())
}

/// What one measured window saw.
struct Figures {
    elapsed: Duration,
    deliveries: u64,
    sent: u64,
    server_cpu: Option<Duration>,
    server_rss_kib: Option<u64>,
}

/// Lets the load warm up, then counts for `--duration` seconds.
async fn measure(run: &Run, common: &Common) -> Figures {
    Timer::after(Duration::from_secs_f64(common.warmup)).await;
    let before = sample_server(common);
    let (deliveries_before, sent_before) = (run.deliveries.get(), run.sent.get());
    let started = Instant::now();
    run.measuring.set(true);

    Timer::after(Duration::from_secs_f64(common.duration)).await;
    run.measuring.set(false);
    let elapsed = started.elapsed();
    let after = sample_server(common);
    run.stopping.set(true);

    Figures {
        elapsed,
        deliveries: run.deliveries.get() - deliveries_before,
        sent: run.sent.get() - sent_before,
        server_cpu: after
            .cpu
            .zip(before.cpu)
            .map(|(after, before)| after - before),
        server_rss_kib: after.rss_kib,
    }
}

fn print_latency(run: &Run) {
    let latency = run.latency.borrow();
    println!(
        "latency: p50={:?} p99={:?} max={:?} (n={})",
        latency.quantile(0.50),
        latency.quantile(0.99),
        latency.max(),
        latency.count()
    );
}

fn print_server_cpu(figures: &Figures, unit: &str, count: u64) {
    if let Some(cpu) = figures.server_cpu {
        let share = cpu.as_secs_f64() / figures.elapsed.as_secs_f64() * 100.0;
        let per = cpu.as_secs_f64() * 1e9 / count.max(1) as f64;
        let total = cpu.as_secs_f64();
        println!("server cpu: {total:.2} s ({share:.0}% of one core), {per:.0} ns per {unit}");
    }
    if let Some(rss) = figures.server_rss_kib {
        println!("server rss: {rss} KiB");
    }
}

/// One chat member: reads every event, checks seq, records latency of
/// lines; a sender also writes lines while its window allows.
async fn chat_member(
    run: Rc<Run>,
    server: String,
    path: String,
    sender: Option<usize>,
    shape: RoomShape,
) {
    let (stream, leftover) = match wire::upgrade(&server, &path).await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            eprintln!("join failed: {error}");
            run.failed.set(run.failed.get() + 1);
            return;
        }
    };
    run.joined.set(run.joined.get() + 1);

    // The window: a sender takes a token per line and gets it back when its
    // own line comes round.
    let (token_back, token) = async_channel::bounded(shape.window.max(1));
    for _ in 0..shape.window.max(1) {
        let _ = token_back.try_send(());
    }

    let receive = receive_events(
        &run,
        stream.clone(),
        leftover,
        sender,
        shape.size,
        token_back,
    );
    match sender {
        Some(index) => {
            let send = send_lines(&run, stream, index, shape, token);
            futures_lite::future::zip(receive, send).await;
        }
        None => receive.await,
    }

    if !run.stopping.get() {
        Run::bump(&run.disconnects);
    }
}

async fn receive_events(
    run: &Run,
    stream: async_net::TcpStream,
    leftover: Vec<u8>,
    sender: Option<usize>,
    line_len: usize,
    token_back: async_channel::Sender<()>,
) {
    let mut reader = Receiver::new(stream, leftover, 64 * 1024);
    let mut last_seq: Option<u64> = None;
    while let Some(frame) = reader.next_frame(run).await {
        if frame.opcode == 0x8 {
            break;
        }
        if frame.opcode != 0x1 {
            continue;
        }
        let payload = &reader.buf[frame.payload.clone()];

        // Lines are nearly every frame: read them by position. Anything
        // else (welcome, join, leave, error) is rare and searched.
        let Some(after_prefix) = payload.strip_prefix(MESSAGE_PREFIX) else {
            check_seq(
                run,
                wire::number_after(payload, br#""seq":"#),
                &mut last_seq,
            );
            continue;
        };
        check_seq(run, leading_number(after_prefix), &mut last_seq);

        let Some((sent_at, from)) = stamp_of(payload, line_len) else {
            continue;
        };
        if run.measuring.get() {
            Run::bump(&run.deliveries);
            let micros = reader.read_at.saturating_sub(sent_at) / 1_000;
            run.latency.borrow_mut().record(micros);
        }
        if Some(from) == sender {
            let _ = token_back.try_send(());
        }
    }
}

/// How every `message` object starts (PROTOCOL.md's field order).
const MESSAGE_PREFIX: &[u8] = br#"{"type":"message","seq":"#;

fn leading_number(digits: &[u8]) -> Option<u64> {
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn check_seq(run: &Run, seq: Option<u64>, last_seq: &mut Option<u64>) {
    let Some(seq) = seq else { return };
    if last_seq.is_some_and(|last| seq != last + 1) {
        Run::bump(&run.seq_gaps);
    }
    *last_seq = Some(seq);
}

/// Reads the send time and sender index stamped into a line of `line_len`
/// bytes, found from the end of the object:
/// `...,"text":"L<stamp>...","ts":<digits>}`. The text is where its length
/// puts it unless the server escaped it; then it is searched for.
fn stamp_of(json: &[u8], line_len: usize) -> Option<(u64, usize)> {
    const TEXT_KEY: &[u8] = br#""text":"L"#;
    let body = json.strip_suffix(b"}")?;
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let before_ts = body
        .get(..body.len() - digits)?
        .strip_suffix(br#"","ts":"#)?;
    let expected_key = before_ts.len().checked_sub(line_len + TEXT_KEY.len() - 1);
    let key_start = match expected_key {
        Some(at) if before_ts.get(at..at + TEXT_KEY.len()) == Some(TEXT_KEY) => at,
        _ => wire::find_last(before_ts, TEXT_KEY)?,
    };
    let text_start = key_start + TEXT_KEY.len();
    let stamp = before_ts.get(text_start..text_start + STAMP_LEN - 1)?;
    let sent_at = parse_hex(&stamp[..16])?;
    let from = parse_hex(&stamp[16..])? as usize;
    Some((sent_at, from))
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| {
        let nibble = (digit as char).to_digit(16)?;
        Some(value << 4 | u64::from(nibble))
    })
}

fn write_stamp(payload: &mut [u8], sent_at: u64, from: usize) {
    payload[0] = b'L';
    write_hex_stamp(&mut payload[1..17], sent_at);
    write_hex_stamp(&mut payload[17..21], (from as u64) << 48);
}

async fn send_lines(
    run: &Run,
    mut stream: async_net::TcpStream,
    index: usize,
    shape: RoomShape,
    token: async_channel::Receiver<()>,
) {
    let mut frame = PrebuiltFrame::new(0x1, &vec![b'x'; shape.size]);
    let pause = (shape.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / shape.rate));

    while !run.stopping.get() {
        if token.recv().await.is_err() {
            return;
        }

        write_stamp(frame.payload_mut(), run.nanos(), index);
        if stream.write_all(frame.as_bytes()).await.is_err() {
            return;
        }
        if run.measuring.get() {
            Run::bump(&run.sent);
        }
        if let Some(pause) = pause {
            Timer::after(pause).await;
        }
    }
}

/// Reads server frames into one reused buffer.
struct Receiver {
    stream: async_net::TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// When the last read returned, in the run's nanoseconds: one clock
    /// read per read call, not per frame.
    read_at: u64,
}

impl Receiver {
    fn new(stream: async_net::TcpStream, leftover: Vec<u8>, capacity: usize) -> Receiver {
        let mut buf = vec![0; capacity.max(leftover.len())];
        let end = leftover.len();
        buf[..end].copy_from_slice(&leftover);
        Receiver {
            stream,
            buf,
            start: 0,
            end,
            read_at: 0,
        }
    }

    /// Returns the next whole frame (its payload indexes `self.buf`), or
    /// `None` at end of stream.
    async fn next_frame(&mut self, run: &Run) -> Option<wire::FrameRef> {
        loop {
            if let Some((mut frame, used)) = wire::split_frame(&self.buf[self.start..self.end]) {
                frame.payload = frame.payload.start + self.start..frame.payload.end + self.start;
                self.start += used;
                return Some(frame);
            }

            // Make room: move the partial frame to the front, grow if one
            // frame is larger than the buffer.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.stream.read(&mut self.buf[self.end..]).await {
                Ok(0) | Err(_) => return None,
                Ok(read) => {
                    self.end += read;
                    self.read_at = run.nanos();
                }
            }
        }
    }
}

/// What an echo load sends.
#[derive(Clone, Copy)]
struct EchoShape {
    connections: usize,
    size: usize,
    /// Messages each connection has in flight (at least 1).
    window: usize,
    /// Whether the window goes out in one write, and only once all of the
    /// previous one came back.
    burst: bool,
}

/// Echo load: every connection keeps `window` messages in flight and sends
/// a new one for each that comes back, or, in bursts, a new window once
/// the whole last one came back.
async fn echo_load(
    executor: &LocalExecutor<'_>,
    common: &Common,
    shape: EchoShape,
) -> Result<(), String> {
    if shape.size < 16 {
        return Err("--size must be at least 16 for echo".into());
    }
    let run = Run::new();
    for _ in 0..shape.connections {
        let task = echo_connection(run.clone(), common.server.clone(), shape);
        executor.spawn(task).detach();
    }

    wait_for_joins(&run, shape.connections).await?;
    let figures = measure(&run, common).await;

    println!(
        "mode=echo connections={} size={} window={} burst={}",
        shape.connections, shape.size, shape.window, shape.burst
    );
    let seconds = figures.elapsed.as_secs_f64();
    println!("messages/s: {:.0}", figures.deliveries as f64 / seconds);
    print_latency(&run);
    println!("disconnects: {}", run.disconnects.get());
    print_server_cpu(&figures, "message", figures.deliveries);
    Ok(())
}

async fn echo_connection(run: Rc<Run>, server: String, shape: EchoShape) {
    let Ok((stream, leftover)) = wire::upgrade(&server, "/echo").await else {
        run.failed.set(run.failed.get() + 1);
        return;
    };
    run.joined.set(run.joined.get() + 1);

    let mut writer = stream.clone();
    let mut frame = PrebuiltFrame::new(0x1, &vec![b'x'; shape.size]);
    let mut reader = Receiver::new(stream, leftover, 16 * 1024);
    let mut burst = Vec::with_capacity(frame.as_bytes().len() * shape.window);
    if !send_stamped(&run, &mut writer, &mut frame, &mut burst, shape.window).await {
        return;
    }

    let mut outstanding = shape.window;
    while let Some(reply) = reader.next_frame(&run).await {
        if reply.opcode == 0x8 || run.stopping.get() {
            break;
        }
        let payload = &reader.buf[reply.payload.clone()];
        if run.measuring.get() {
            Run::bump(&run.deliveries);
            if let Some(sent_at) = payload.get(..16).and_then(parse_hex) {
                let micros = run.nanos().saturating_sub(sent_at) / 1_000;
                run.latency.borrow_mut().record(micros);
            }
        }

        outstanding -= 1;
        let next = match (shape.burst, outstanding) {
            (true, 0) => shape.window,
            (true, _) => continue,
            (false, _) => 1,
        };
        if !send_stamped(&run, &mut writer, &mut frame, &mut burst, next).await {
            break;
        }
        outstanding += next;
    }
    if !run.stopping.get() {
        Run::bump(&run.disconnects);
    }
}

/// Writes `count` copies of `frame`, each stamped with the time, in one
/// write gathered in `burst`; returns whether the write succeeded.
async fn send_stamped(
    run: &Run,
    writer: &mut async_net::TcpStream,
    frame: &mut PrebuiltFrame,
    burst: &mut Vec<u8>,
    count: usize,
) -> bool {
    burst.clear();
    for _ in 0..count {
        write_hex_stamp(&mut frame.payload_mut()[..16], run.nanos());
        burst.extend_from_slice(frame.as_bytes());
    }
    writer.write_all(burst).await.is_ok()
}

/// Idle load: joins members in rooms of `room_size` and holds them, then
/// reports how much the server's RSS grew per member.
async fn idle_load(
    executor: &LocalExecutor<'_>,
    common: &Common,
    connections: usize,
    room_size: usize,
) -> Result<(), String> {
    let Some(pid) = common.server_pid else {
        return Err("idle needs --server-pid to read the server's RSS".into());
    };
    let run = Run::new();
    let tag = format!("i{:x}", fastrand::u32(..));
    let before = stats::process_rss_kib(pid).ok_or("cannot read the server's RSS")?;

    // At most a few hundred handshakes at once, like a crowd arriving.
    let (gate_open, gate) = async_channel::bounded::<()>(256);
    for index in 0..connections {
        let room = format!("idle-{tag}-{}", index / room_size.max(1));
        let path = join_path(&room, index, &tag);
        let task = idle_member(run.clone(), common.server.clone(), path, gate_open.clone());
        executor.spawn(task).detach();
        let _ = gate.recv().await;
    }

    wait_for_joins(&run, connections).await?;
    Timer::after(Duration::from_secs_f64(common.warmup.max(2.0))).await;
    let after = stats::process_rss_kib(pid).ok_or("cannot read the server's RSS")?;

    let per_member = (after.saturating_sub(before)) as f64 * 1024.0 / connections as f64;
    println!("mode=idle connections={connections} room_size={room_size}");
    println!("server rss: {before} KiB before, {after} KiB with all members joined");
    println!(
        "server rss per member: {:.0} bytes ({:.2} KiB)",
        per_member,
        per_member / 1024.0
    );
    println!("disconnects: {}", run.disconnects.get());

    Timer::after(Duration::from_secs_f64(common.duration)).await;
    println!(
        "disconnects after holding {:.0} s: {}",
        common.duration,
        run.disconnects.get()
    );
    run.stopping.set(true);
    Ok(())
}

async fn idle_member(
    run: Rc<Run>,
    server: String,
    path: String,
    gate_open: async_channel::Sender<()>,
) {
    let joined = wire::upgrade(&server, &path).await;
    let _ = gate_open.try_send(());
    let Ok((mut stream, _)) = joined else {
        run.failed.set(run.failed.get() + 1);
        return;
    };
    run.joined.set(run.joined.get() + 1);

    // Drain whatever the room sends through a small buffer.
    let mut sink = [0u8; 512];
    while let Ok(read) = stream.read(&mut sink).await {
        if read == 0 {
            break;
        }
    }
    if !run.stopping.get() {
        Run::bump(&run.disconnects);
    }
}

/// Churn load: loops that join, wait for the welcome, close and go again.
async fn churn_load(
    executor: &LocalExecutor<'_>,
    common: &Common,
    concurrency: usize,
    rooms: usize,
) -> Result<(), String> {
    let run = Run::new();
    let tag = format!("c{:x}", fastrand::u32(..));
    for worker in 0..concurrency {
        let task = churn_worker(
            run.clone(),
            common.server.clone(),
            tag.clone(),
            worker,
            rooms,
        );
        executor.spawn(task).detach();
    }
    run.joined.set(concurrency);

    let figures = measure(&run, common).await;
    println!("mode=churn concurrency={concurrency} rooms={rooms}");
    let seconds = figures.elapsed.as_secs_f64();
    println!("joins+leaves/s: {:.0}", figures.deliveries as f64 / seconds);
    println!("join latency (connect to welcome):");
    print_latency(&run);
    println!("failed joins: {}", run.failed.get());
    print_server_cpu(&figures, "join+leave", figures.deliveries);
    Ok(())
}

async fn churn_worker(run: Rc<Run>, server: String, tag: String, worker: usize, rooms: usize) {
    let close = PrebuiltFrame::new(0x8, &1000u16.to_be_bytes());
    let mut round = 0usize;
    while !run.stopping.get() {
        let room = format!("churn-{tag}-{}", (worker + round) % rooms.max(1));
        let path = join_path(&room, worker * 1_000_000 + round, &tag);
        round += 1;

        let began = run.nanos();
        let Ok((mut stream, leftover)) = wire::upgrade(&server, &path).await else {
            run.failed.set(run.failed.get() + 1);
            Timer::after(Duration::from_millis(10)).await;
            continue;
        };
        let mut reader = Receiver::new(stream.clone(), leftover, 4 * 1024);
        if reader.next_frame(&run).await.is_none() {
            run.failed.set(run.failed.get() + 1);
            continue;
        }
        if run.measuring.get() {
            let micros = run.nanos().saturating_sub(began) / 1_000;
            run.latency.borrow_mut().record(micros);
            Run::bump(&run.deliveries);
        }

        // Leave cleanly: our close, then the server's, then end of stream.
        if stream.write_all(close.as_bytes()).await.is_err() {
            continue;
        }
        while let Some(frame) = reader.next_frame(&run).await {
            if frame.opcode == 0x8 {
                break;
            }
        }
    }
}

fn write_hex_stamp(digits: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in digits.iter_mut().enumerate() {
        *byte = HEX[((value >> (60 - 4 * i)) & 0xF) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the `message` event a server sends for a stamped line.
    fn message_event(text: &str) -> Vec<u8> {
        format!(r#"{{"type":"message","seq":7,"from":"a","text":"{text}","ts":1700000000000}}"#)
            .into_bytes()
    }

    #[test]
    fn stamp_is_read_where_the_line_length_puts_it() {
        let mut line = vec![b'x'; 40];
        write_stamp(&mut line, 0x1234_5678_9abc, 3);
        let text = String::from_utf8(line).expect("ascii");
        let event = message_event(&text);

        assert_eq!(stamp_of(&event, 40), Some((0x1234_5678_9abc, 3)));
    }

    #[test]
    fn stamp_is_searched_for_when_the_text_is_not_the_expected_length() {
        let mut line = vec![b'x'; 40];
        write_stamp(&mut line, 42, 9);
        let text = String::from_utf8(line).expect("ascii") + r#"\u2028"#;
        let event = message_event(&text);

        assert_eq!(stamp_of(&event, 40), Some((42, 9)));
        assert_eq!(stamp_of(b"{\"type\":\"join\"}", 40), None);
    }
}
