//! Throughput of natter-core's hot paths, each measured beside a `memcpy`
//! of the same bytes in the same run, so the ratio (not the absolute figure)
//! is what to compare across noisy machines.
//!
//! Run with `cargo bench -p natter-core`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use natter_core::config::ServerConfig;
use natter_core::frame::{apply_mask, encode_frame, FrameDecoder, Masking, OpCode};
use natter_core::handshake::{Progress, ServerHandshake};
use natter_core::names::{RoomCode, SessionId, UserName};
use natter_core::room::{Member, Room, TextOutcome};
use natter_core::utf8::Utf8Validator;

const PAYLOAD: usize = 64 * 1024;

/// Text mixing ASCII with two-, three- and four-byte sequences, the way chat
/// in many languages does.
fn mixed_text(len: usize) -> Vec<u8> {
    let sample = "natter: ça va? Привет, 世界! 🦀 plain ascii words follow here. ";
    let mut text = sample.repeat(len / sample.len() + 1).into_bytes();
    while std::str::from_utf8(&text[..len]).is_err() {
        text.pop();
        text.push(b' ');
    }
    text.truncate(len);
    text
}

fn memcpy(c: &mut Criterion, group_name: &str, len: usize) {
    let source = vec![0x5Au8; len];
    let mut target = vec![0u8; len];
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function(BenchmarkId::new("memcpy", len), |b| {
        b.iter(|| target.copy_from_slice(black_box(&source)))
    });
    group.finish();
}

fn unmask(c: &mut Criterion) {
    let mut data = vec![0x5Au8; PAYLOAD];
    let mut group = c.benchmark_group("unmask");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group.bench_function(BenchmarkId::new("apply_mask", PAYLOAD), |b| {
        b.iter(|| apply_mask(black_box(&mut data), [0x12, 0x34, 0x56, 0x78], 1))
    });
    group.finish();
    memcpy(c, "unmask", PAYLOAD);
}

fn decode(c: &mut Criterion) {
    let mut wire = Vec::new();
    encode_frame(
        &mut wire,
        OpCode::Binary,
        true,
        &vec![7u8; PAYLOAD],
        Some([9, 8, 7, 6]),
    );
    let mut payload = Vec::with_capacity(PAYLOAD);

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group.bench_function(BenchmarkId::new("masked_frame", PAYLOAD), |b| {
        b.iter(|| {
            let mut decoder = FrameDecoder::new(Masking::Required, PAYLOAD as u64);
            let mut input = black_box(&wire[..]);
            payload.clear();
            while !input.is_empty() {
                let used = match decoder.decode(input, &mut payload) {
                    Ok(natter_core::frame::Decoded::Header { consumed, .. }) => consumed,
                    Ok(natter_core::frame::Decoded::Payload { consumed, .. }) => consumed,
                    Ok(natter_core::frame::Decoded::NeedMore) | Err(_) => break,
                };
                input = &input[used..];
            }
            black_box(payload.len())
        })
    });
    group.finish();
    memcpy(c, "decode", PAYLOAD);
}

fn encode(c: &mut Criterion) {
    let payload = vec![7u8; PAYLOAD];
    let mut out = Vec::with_capacity(PAYLOAD + 14);

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group.bench_function(BenchmarkId::new("server_frame", PAYLOAD), |b| {
        b.iter(|| {
            out.clear();
            encode_frame(&mut out, OpCode::Binary, true, black_box(&payload), None);
        })
    });
    group.bench_function(BenchmarkId::new("client_frame_masked", PAYLOAD), |b| {
        b.iter(|| {
            out.clear();
            encode_frame(
                &mut out,
                OpCode::Binary,
                true,
                black_box(&payload),
                Some([1, 2, 3, 4]),
            );
        })
    });
    group.finish();
    memcpy(c, "encode", PAYLOAD);
}

fn utf8(c: &mut Criterion) {
    let ascii = vec![b'a'; PAYLOAD];
    let mixed = mixed_text(PAYLOAD);

    let mut group = c.benchmark_group("utf8");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        group.bench_function(BenchmarkId::new(name, PAYLOAD), |b| {
            b.iter(|| {
                let mut validator = Utf8Validator::new();
                black_box(validator.feed(black_box(text)).is_ok())
            })
        });
    }
    group.finish();
    memcpy(c, "utf8", PAYLOAD);
}

fn handshake(c: &mut Criterion) {
    let request = b"GET /joinRoom?user_name=ana%20maria&room_code=lobby&session_id=k3J9x0aaQ \
        HTTP/1.1\r\nHost: chat.example:8080\r\nUser-Agent: natter-bench\r\n\
        Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Origin: https://chat.example\r\n\r\n";
    let config = ServerConfig::default();
    let now = Instant::now();

    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Bytes(request.len() as u64));
    group.bench_function(BenchmarkId::new("join_request", request.len()), |b| {
        b.iter(|| {
            let mut parser = ServerHandshake::new(&config, now);
            matches!(
                parser.handle_input(black_box(request)),
                Progress::Done { .. }
            )
        })
    });
    group.finish();
    memcpy(c, "handshake", request.len());
}

fn broadcast(c: &mut Criterion) {
    const MEMBERS: usize = 100;
    let now = Instant::now();
    let mut room: Room<Vec<natter_core::event::SharedFrame>> =
        Room::new(RoomCode::parse("bench").expect("valid code"), None, None);
    let mut ids = Vec::new();
    for index in 0..MEMBERS {
        let member = Member {
            user_name: UserName::parse(&format!("user{index}")).expect("valid name"),
            session_id: SessionId::parse(&format!("session{index:04}")).expect("valid id"),
        };
        match room.join(member, Vec::new(), now, 0) {
            Ok(joined) => ids.push(joined.id),
            Err(_) => unreachable!("session ids are distinct"),
        }
    }
    let line = "x".repeat(64);
    let mut queues: Vec<Vec<natter_core::event::SharedFrame>> = vec![Vec::new(); MEMBERS];
    let frame_len = match room.handle_text(ids[0], &line, now, 0) {
        TextOutcome::Broadcast(frame) => frame.len(),
        _ => unreachable!("no rate limit is set"),
    };

    let mut group = c.benchmark_group("broadcast");
    group.throughput(Throughput::Bytes((frame_len * MEMBERS) as u64));
    group.bench_function(BenchmarkId::new("room_of_100", frame_len * MEMBERS), |b| {
        b.iter(|| {
            if let TextOutcome::Broadcast(frame) = room.handle_text(ids[1], &line, now, 0) {
                for queue in queues.iter_mut() {
                    queue.clear();
                    queue.push(frame.clone());
                }
            }
        })
    });
    group.finish();
    memcpy(c, "broadcast", frame_len * MEMBERS);
}

criterion_group!(benches, unmask, decode, encode, utf8, handshake, broadcast);
criterion_main!(benches);
