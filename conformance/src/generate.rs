//! The generator of `vectors/ws/*.vec`: every case of the Autobahn TestSuite
//! sections 1 to 7, 9 and 10.1, in natter's vector format, plus natter's own.
//!
//! `natter-conformance --generate` writes the files; the test
//! `committed_vectors_match_the_generator` fails when they differ from what
//! this module produces, so the data and its source cannot drift apart.

use crate::expr::{Expr, Term};
use crate::vector::{CloseExpectation, Delivery, EventKind, Expected, FrameSpec, Item, WsCase};

const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

/// One generated vector file.
#[derive(Debug, Clone)]
pub struct VectorFile {
    /// The file name inside `vectors/ws/`.
    pub name: &'static str,
    /// The comment heading the file.
    pub heading: &'static str,
    /// The cases, in order.
    pub cases: Vec<WsCase>,
}

impl VectorFile {
    /// Returns the file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in self.heading.lines() {
            out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
        }
        out.push_str(
            "# Written by `natter-conformance --generate`: change the generator, not this file.\n",
        );
        for case in &self.cases {
            out.push('\n');
            out.push_str(&case.to_string());
        }
        out
    }
}

/// Returns every generated vector file.
pub fn vector_files() -> Vec<VectorFile> {
    vec![
        VectorFile {
            name: "01-framing.vec",
            heading: "Autobahn section 1: text and binary frames of every length encoding.",
            cases: framing(),
        },
        VectorFile {
            name: "02-pings.vec",
            heading: "Autobahn section 2: pings and pongs.",
            cases: pings(),
        },
        VectorFile {
            name: "03-reserved-bits.vec",
            heading: "Autobahn section 3: reserved bits set without an extension.",
            cases: reserved_bits(),
        },
        VectorFile {
            name: "04-opcodes.vec",
            heading: "Autobahn section 4: reserved opcodes.",
            cases: opcodes(),
        },
        VectorFile {
            name: "05-fragmentation.vec",
            heading: "Autobahn section 5: fragmented messages and control frames between them.",
            cases: fragmentation(),
        },
        VectorFile {
            name: "06-utf8.vec",
            heading: UTF8_HEADING,
            cases: utf8(),
        },
        VectorFile {
            name: "07-close.vec",
            heading: "Autobahn section 7: the closing handshake, close codes and reasons.",
            cases: close(),
        },
        VectorFile {
            name: "09-limits.vec",
            heading: LIMITS_HEADING,
            cases: limits(),
        },
        VectorFile {
            name: "10-misc.vec",
            heading:
                "Autobahn section 10.1: a message fragmented the way a sender may auto-fragment.",
            cases: misc(),
        },
        VectorFile {
            name: "90-natter.vec",
            heading: "natter's own cases: rules of RFC 6455 and PROTOCOL.md that Autobahn does \
                      not cover.",
            cases: natter(),
        },
    ]
}

const UTF8_HEADING: &str = "\
Autobahn section 6: UTF-8 in text messages.
6.5 to 6.23 are the sequences of Markus Kuhn's UTF-8 decoder stress test, each sent
as one text message in one frame, as Autobahn sends them: valid ones come back,
invalid ones fail the connection with 1007.";

const LIMITS_HEADING: &str = "\
Autobahn section 9: big messages, many fragments, small chops, many messages.
Autobahn 9.7 and 9.8 wait for each echo before sending the next message; here the
1000 messages go back to back, which the echo endpoint's backpressure must absorb.";

/// A case with an id and a description, and nothing else yet.
fn case(id: &str, about: &str) -> WsCase {
    WsCase {
        id: id.to_owned(),
        about: about.to_owned(),
        ..WsCase::default()
    }
}

/// A final frame with `payload`.
fn frame(opcode: u8, payload: Expr) -> Item {
    Item::Frame(FrameSpec::new(opcode, payload))
}

/// A frame with FIN clear.
fn fragment(opcode: u8, payload: Expr) -> Item {
    let mut spec = FrameSpec::new(opcode, payload);
    spec.fin = false;
    Item::Frame(spec)
}

/// A final frame with reserved bits `rsv`.
fn with_rsv(opcode: u8, rsv: u8, payload: Expr) -> Item {
    let mut spec = FrameSpec::new(opcode, payload);
    spec.rsv = rsv;
    Item::Frame(spec)
}

fn text(value: &str) -> Expr {
    Expr::text(value)
}

fn stars(count: usize) -> Expr {
    Expr::repeat(Term::Text("*".to_owned()), count)
}

fn fe_bytes(count: usize) -> Expr {
    Expr::repeat(Term::Hex(vec![0xfe]), count)
}

fn close_payload(code: u16) -> Expr {
    Expr {
        terms: vec![Term::U16(code)],
    }
}

fn expected(kind: EventKind, payload: Expr) -> Expected {
    Expected {
        times: 1,
        kind,
        payload,
    }
}

impl WsCase {
    fn with(mut self, items: Vec<Item>) -> WsCase {
        self.items = items;
        self
    }

    fn deliver(mut self, delivery: Delivery) -> WsCase {
        self.delivery = delivery;
        self
    }

    fn expect(mut self, kind: EventKind, payload: Expr) -> WsCase {
        self.expect.push(expected(kind, payload));
        self
    }

    /// Accepts `events` as well, for the reason `label`.
    fn or_expect(mut self, label: &str, events: Vec<Expected>) -> WsCase {
        self.alternatives.push(crate::vector::Alternative {
            label: label.to_owned(),
            expect: events,
        });
        self
    }

    fn note(mut self, note: &str) -> WsCase {
        self.notes.push(note.to_owned());
        self
    }

    /// The harness closes with 1000 once the events arrived, and the server
    /// must answer 1000.
    fn closed_normally(mut self) -> WsCase {
        self.then_close = Some(1000);
        self.close = CloseExpectation {
            codes: vec![Some(1000)],
            by_delivery: None,
        };
        self
    }

    /// The server must fail the connection with `code`.
    fn failed(mut self, code: u16) -> WsCase {
        self.close = CloseExpectation {
            codes: vec![Some(code)],
            by_delivery: None,
        };
        self
    }

    /// The server must fail the connection with `code` no later than right
    /// after delivery `delivery`.
    fn failed_by(mut self, code: u16, delivery: usize) -> WsCase {
        self.close = CloseExpectation {
            codes: vec![Some(code)],
            by_delivery: Some(delivery),
        };
        self
    }

    fn closed_with(mut self, codes: &[Option<u16>]) -> WsCase {
        self.close = CloseExpectation {
            codes: codes.to_vec(),
            by_delivery: None,
        };
        self
    }
}

fn framing() -> Vec<WsCase> {
    const LENGTHS: [usize; 7] = [0, 125, 126, 127, 128, 65535, 65536];
    let mut cases = Vec::new();

    for (kind, section, opcode, name) in [
        (EventKind::Text, 1, TEXT, "text"),
        (EventKind::Binary, 2, BINARY, "binary"),
    ] {
        let payload = |len| match kind {
            EventKind::Text => stars(len),
            _ => fe_bytes(len),
        };
        for (index, len) in LENGTHS.iter().enumerate() {
            let about = format!("A {name} message with a payload of {len} bytes.");
            let id = format!("1.{section}.{}", index + 1);
            cases.push(
                case(&id, &about)
                    .with(vec![frame(opcode, payload(*len))])
                    .expect(kind, payload(*len))
                    .closed_normally(),
            );
        }
        let about = format!("A {name} message of 65536 bytes, sent in chops of 997 bytes.");
        cases.push(
            case(&format!("1.{section}.8"), &about)
                .with(vec![frame(opcode, payload(65536))])
                .deliver(Delivery::Chunks(997))
                .expect(kind, payload(65536))
                .closed_normally(),
        );
    }
    cases
}

fn pings() -> Vec<WsCase> {
    let binary = Expr::hex(&[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
    let unsolicited = text("unsolicited pong payload");
    let ten: Vec<Item> = (0..10)
        .map(|i| frame(PING, text(&format!("payload-{i}"))))
        .collect();
    let mut ten_pongs = case("2.10", "Ten pings with payloads, back to back.").with(ten.clone());
    for i in 0..10 {
        ten_pongs = ten_pongs.expect(EventKind::Pong, text(&format!("payload-{i}")));
    }
    let mut chopped = ten_pongs.clone().with(ten).deliver(Delivery::Chunks(1));
    chopped.id = "2.11".to_owned();
    chopped.about = "Ten pings with payloads, sent in chops of one byte.".to_owned();

    vec![
        case("2.1", "A ping without payload.")
            .with(vec![frame(PING, text(""))])
            .expect(EventKind::Pong, text(""))
            .closed_normally(),
        case("2.2", "A ping with a short text payload.")
            .with(vec![frame(PING, text("Hello, world!"))])
            .expect(EventKind::Pong, text("Hello, world!"))
            .closed_normally(),
        case("2.3", "A ping with a short binary payload.")
            .with(vec![frame(PING, binary.clone())])
            .expect(EventKind::Pong, binary)
            .closed_normally(),
        case(
            "2.4",
            "A ping with a payload of 125 bytes, the most a control frame holds.",
        )
        .with(vec![frame(PING, fe_bytes(125))])
        .expect(EventKind::Pong, fe_bytes(125))
        .closed_normally(),
        case(
            "2.5",
            "A ping with a payload of 126 bytes, over the control frame limit.",
        )
        .with(vec![frame(PING, fe_bytes(126))])
        .failed(1002),
        case(
            "2.6",
            "A ping with a payload of 125 bytes, sent in chops of one byte.",
        )
        .with(vec![frame(PING, fe_bytes(125))])
        .deliver(Delivery::Chunks(1))
        .expect(EventKind::Pong, fe_bytes(125))
        .closed_normally(),
        case(
            "2.7",
            "An unsolicited pong without payload: nothing answers it.",
        )
        .with(vec![frame(PONG, text(""))])
        .closed_normally(),
        case(
            "2.8",
            "An unsolicited pong with payload: nothing answers it.",
        )
        .with(vec![frame(PONG, unsolicited.clone())])
        .closed_normally(),
        case(
            "2.9",
            "An unsolicited pong, then a ping: only the ping is answered.",
        )
        .with(vec![
            frame(PONG, unsolicited),
            frame(PING, text("ping payload")),
        ])
        .expect(EventKind::Pong, text("ping payload"))
        .closed_normally(),
        ten_pongs.closed_normally(),
        chopped.closed_normally(),
    ]
}

/// A text message, a bad frame, then a ping: the message comes back, the
/// connection fails, and the ping is never answered.
fn echo_then_bad(id: &str, about: &str, bad: Item, delivery: Delivery) -> WsCase {
    case(id, about)
        .with(vec![
            frame(TEXT, text("Hello, world!")),
            bad,
            frame(PING, text("Hello, world!")),
        ])
        .deliver(delivery)
        .expect(EventKind::Text, text("Hello, world!"))
        .or_expect(NO_ECHO, Vec::new())
        .failed(1002)
}

/// Why a message complete before a violation may go without its echo: RFC
/// 6455 §7.1.7 lets a failing endpoint stop sending data, and Autobahn grades
/// it NON-STRICT.
const NO_ECHO: &str = "no echo: the violation shared a read with the message (NON-STRICT)";

fn reserved_bits() -> Vec<WsCase> {
    let hello = || text("Hello, world!");
    let binary = Expr::hex(&[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]);
    vec![
        case("3.1", "A text message with RSV1 set.")
            .with(vec![with_rsv(TEXT, 4, hello())])
            .failed(1002),
        echo_then_bad(
            "3.2",
            "A text message, the same with RSV2 set, then a ping; all in one delivery.",
            with_rsv(TEXT, 2, hello()),
            Delivery::Whole,
        ),
        echo_then_bad(
            "3.3",
            "A text message, the same with RSV1 and RSV2 set, then a ping; frame by frame.",
            with_rsv(TEXT, 6, hello()),
            Delivery::PerFrame,
        ),
        echo_then_bad(
            "3.4",
            "A text message, the same with RSV3 set, then a ping; in chops of one byte.",
            with_rsv(TEXT, 1, hello()),
            Delivery::Chunks(1),
        ),
        case("3.5", "A binary message with RSV1 and RSV3 set.")
            .with(vec![with_rsv(BINARY, 5, binary)])
            .failed(1002),
        case("3.6", "A ping with RSV2 and RSV3 set.")
            .with(vec![with_rsv(PING, 3, hello())])
            .failed(1002),
        case("3.7", "A close frame with all three RSV bits set.")
            .with(vec![with_rsv(CLOSE, 7, close_payload(1000))])
            .failed(1002),
    ]
}

fn opcodes() -> Vec<WsCase> {
    let reserved = || text("reserved opcode payload");
    let mut cases = Vec::new();

    for (group, first) in [(1, 3u8), (2, 11u8)] {
        let kind = if group == 1 { "non-control" } else { "control" };
        cases.push(
            case(
                &format!("4.{group}.1"),
                &format!("A frame with the reserved {kind} opcode {first} and no payload."),
            )
            .with(vec![frame(first, text(""))])
            .failed(1002),
        );
        cases.push(
            case(
                &format!("4.{group}.2"),
                &format!(
                    "A frame with the reserved {kind} opcode {} and a payload.",
                    first + 1
                ),
            )
            .with(vec![frame(first + 1, reserved())])
            .failed(1002),
        );
        let variants = [
            (3, text(""), Delivery::Whole, "in one delivery"),
            (4, reserved(), Delivery::PerFrame, "frame by frame"),
            (5, reserved(), Delivery::Chunks(1), "in chops of one byte"),
        ];
        for (number, payload, delivery, how) in variants {
            let opcode = first + number - 1;
            let about = format!(
                "A text message, a frame with the reserved opcode {opcode}, then a ping; {how}."
            );
            cases.push(echo_then_bad(
                &format!("4.{group}.{number}"),
                &about,
                frame(opcode, payload),
                delivery,
            ));
        }
    }
    cases
}

fn fragmentation() -> Vec<WsCase> {
    let f = |n: u32| text(&format!("fragment{n}"));
    let hows = [
        (Delivery::Whole, "in one delivery"),
        (Delivery::PerFrame, "frame by frame"),
        (Delivery::Chunks(1), "in chops of one byte"),
    ];
    let mut cases = vec![
        case("5.1", "A ping fragmented into two frames.")
            .with(vec![fragment(PING, f(1)), frame(CONT, f(2))])
            .failed(1002),
        case("5.2", "A pong fragmented into two frames.")
            .with(vec![fragment(PONG, f(1)), frame(CONT, f(2))])
            .failed(1002),
    ];

    for (index, (delivery, how)) in hows.iter().enumerate() {
        cases.push(
            case(
                &format!("5.{}", 3 + index),
                &format!("A text message in two fragments, {how}."),
            )
            .with(vec![fragment(TEXT, f(1)), frame(CONT, f(2))])
            .deliver(*delivery)
            .expect(EventKind::Text, text("fragment1fragment2"))
            .closed_normally(),
        );
    }
    for (index, (delivery, how)) in hows.iter().enumerate() {
        let about = format!("A text message in two fragments with a ping between them, {how}.");
        cases.push(
            case(&format!("5.{}", 6 + index), &about)
                .with(vec![
                    fragment(TEXT, f(1)),
                    frame(PING, text("ping payload")),
                    frame(CONT, f(2)),
                ])
                .deliver(*delivery)
                .expect(EventKind::Pong, text("ping payload"))
                .expect(EventKind::Text, text("fragment1fragment2"))
                .closed_normally(),
        );
    }
    for (index, (delivery, how)) in hows.iter().enumerate() {
        let about =
            format!("A final continuation frame with nothing to continue, then a text, {how}.");
        cases.push(
            case(&format!("5.{}", 9 + index), &about)
                .with(vec![
                    frame(CONT, text("non-continuation payload")),
                    frame(TEXT, text("Hello, world!")),
                ])
                .deliver(*delivery)
                .failed(1002),
        );
    }
    for (index, (delivery, how)) in hows.iter().enumerate() {
        let about =
            format!("A non-final continuation frame with nothing to continue, then a text, {how}.");
        cases.push(
            case(&format!("5.{}", 12 + index), &about)
                .with(vec![
                    fragment(CONT, text("non-continuation payload")),
                    frame(TEXT, text("Hello, world!")),
                ])
                .deliver(*delivery)
                .failed(1002),
        );
    }

    cases.extend(fragmentation_tail());
    cases
}

fn fragmentation_tail() -> Vec<WsCase> {
    let f = |n: u32| text(&format!("fragment{n}"));
    let twice = |first_fin: bool| {
        let opening = if first_fin {
            frame(CONT, f(1))
        } else {
            fragment(CONT, f(1))
        };
        let mut items = Vec::new();
        for _ in 0..2 {
            items.push(opening.clone());
            items.push(fragment(TEXT, f(2)));
            items.push(frame(CONT, f(3)));
        }
        items
    };
    let interleaved = vec![
        fragment(TEXT, f(1)),
        fragment(CONT, f(2)),
        frame(PING, text("pongme 1!")),
        Item::Pause,
        fragment(CONT, f(3)),
        fragment(CONT, f(4)),
        frame(PING, text("pongme 2!")),
        frame(CONT, f(5)),
    ];
    let five = text("fragment1fragment2fragment3fragment4fragment5");

    vec![
        case(
            "5.15",
            "A text in two fragments, then a stray continuation and a text fragment.",
        )
        .with(vec![
            fragment(TEXT, f(1)),
            frame(CONT, f(2)),
            fragment(CONT, f(3)),
            frame(TEXT, f(4)),
        ])
        .expect(EventKind::Text, text("fragment1fragment2"))
        .or_expect(NO_ECHO, Vec::new())
        .failed(1002),
        case(
            "5.16",
            "Twice: a non-final stray continuation, then a text in two fragments.",
        )
        .with(twice(false))
        .failed(1002),
        case(
            "5.17",
            "Twice: a final stray continuation, then a text in two fragments.",
        )
        .with(twice(true))
        .failed(1002),
        case(
            "5.18",
            "A text message whose second fragment is a text frame again.",
        )
        .with(vec![fragment(TEXT, f(1)), frame(TEXT, f(2))])
        .failed(1002),
        case(
            "5.19",
            "A text in five fragments with two pings between them and a pause.",
        )
        .with(interleaved.clone())
        .expect(EventKind::Pong, text("pongme 1!"))
        .expect(EventKind::Pong, text("pongme 2!"))
        .expect(EventKind::Text, five.clone())
        .closed_normally(),
        case("5.20", "The frames of 5.19, each in its own delivery.")
            .with(interleaved)
            .deliver(Delivery::PerFrame)
            .expect(EventKind::Pong, text("pongme 1!"))
            .expect(EventKind::Pong, text("pongme 2!"))
            .expect(EventKind::Text, five)
            .closed_normally(),
    ]
}

/// Fragments `bytes` into text frames of one byte each.
fn one_byte_frames(bytes: &[u8]) -> Vec<Item> {
    let last = bytes.len().saturating_sub(1);
    bytes
        .iter()
        .enumerate()
        .map(|(i, byte)| {
            let opcode = if i == 0 { TEXT } else { CONT };
            let payload = Expr::hex(&[*byte]);
            if i == last {
                frame(opcode, payload)
            } else {
                fragment(opcode, payload)
            }
        })
        .collect()
}

const KOSME: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

fn utf8() -> Vec<WsCase> {
    let hello = "Hello-\u{b5}@\u{df}\u{f6}\u{e4}\u{fc}\u{e0}\u{e1}-UTF-8!!";
    let (first, second) = hello.split_at(11);
    let invalid = Expr::hex(KOSME)
        .then(Expr::hex(b"\xed\xa0\x80"))
        .then(text("edited"));
    let mut cases = vec![
        case("6.1.1", "An empty text message.")
            .with(vec![frame(TEXT, text(""))])
            .expect(EventKind::Text, text(""))
            .closed_normally(),
        case("6.1.2", "A text message in three empty fragments.")
            .with(vec![
                fragment(TEXT, text("")),
                fragment(CONT, text("")),
                frame(CONT, text("")),
            ])
            .expect(EventKind::Text, text(""))
            .closed_normally(),
        case(
            "6.1.3",
            "A text message in three fragments of which only the middle has bytes.",
        )
        .with(vec![
            fragment(TEXT, text("")),
            fragment(CONT, text("middle frame payload")),
            frame(CONT, text("")),
        ])
        .expect(EventKind::Text, text("middle frame payload"))
        .closed_normally(),
        case("6.2.1", "A valid UTF-8 text message in one frame.")
            .with(vec![frame(TEXT, text(hello))])
            .expect(EventKind::Text, text(hello))
            .closed_normally(),
        case(
            "6.2.2",
            "A valid UTF-8 text in two fragments cut on a code point boundary.",
        )
        .with(vec![fragment(TEXT, text(first)), frame(CONT, text(second))])
        .expect(EventKind::Text, text(hello))
        .closed_normally(),
        case(
            "6.2.3",
            "A valid UTF-8 text in one-byte fragments, cutting code points.",
        )
        .with(one_byte_frames(hello.as_bytes()))
        .expect(EventKind::Text, text(hello))
        .closed_normally(),
        case(
            "6.2.4",
            "The valid UTF-8 text \u{3ba}\u{1f79}\u{3c3}\u{3bc}\u{3b5} in one-byte fragments.",
        )
        .with(one_byte_frames(KOSME))
        .expect(EventKind::Text, Expr::hex(KOSME))
        .closed_normally(),
        case(
            "6.3.1",
            "A text message with a UTF-16 surrogate encoded in UTF-8, in one frame.",
        )
        .with(vec![frame(TEXT, invalid.clone())])
        .failed(1007),
        case("6.3.2", "The invalid text of 6.3.1 in one-byte fragments.")
            .with(one_byte_frames(&invalid.eval()))
            .failed(1007),
    ];

    cases.extend(utf8_fail_fast());
    cases.extend(kuhn_cases());
    cases
}

fn utf8_fail_fast() -> Vec<WsCase> {
    let fast = "Autobahn grades a failure noticed only after the last part NON-STRICT; \
                here it fails.";
    let parts_4_1: [&[u8]; 3] = [KOSME, b"\xf4\x90\x80\x80", b"edited"];
    let parts_4_2: [&[u8]; 3] = [
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4",
        b"\x90",
        b"\x80\x80edited",
    ];
    let frames = |parts: [&[u8]; 3]| {
        vec![
            fragment(TEXT, Expr::bytes(parts[0])),
            Item::Pause,
            fragment(CONT, Expr::bytes(parts[1])),
            Item::Pause,
            frame(CONT, Expr::bytes(parts[2])),
        ]
    };
    let chops = |parts: [&[u8]; 3]| {
        let whole: Vec<u8> = parts.concat();
        let mut spec = FrameSpec::new(TEXT, Expr::hex(&whole));
        spec.split = vec![parts[0].len(), parts[0].len() + parts[1].len()];
        vec![Item::Frame(spec)]
    };

    vec![
        case(
            "6.4.1",
            "Three frames with pauses; the 2nd holds U+110000, beyond Unicode.",
        )
        .note(fast)
        .with(frames(parts_4_1))
        .failed_by(1007, 2),
        case(
            "6.4.2",
            "Three frames with pauses; the 2nd holds the byte that breaks F4.",
        )
        .note(fast)
        .with(frames(parts_4_2))
        .failed_by(1007, 2),
        case(
            "6.4.3",
            "The text of 6.4.1 in one frame, cut into the same three deliveries.",
        )
        .note(fast)
        .with(chops(parts_4_1))
        .failed_by(1007, 2),
        case(
            "6.4.4",
            "The text of 6.4.2 in one frame, cut into the same three deliveries.",
        )
        .note(fast)
        .with(chops(parts_4_2))
        .failed_by(1007, 2),
    ]
}

/// Markus Kuhn's UTF-8 decoder stress test, in Autobahn's grouping: one
/// group per subsection 6.5 to 6.23.
fn kuhn_groups() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let v = |bytes: &[u8]| bytes.to_vec();
    let prefixes = (1..=KOSME.len()).map(|n| KOSME[..n].to_vec()).collect();
    let continuations: Vec<u8> = (0x80..0xbf).collect();
    let lonely = [
        (0xc0u8, 0xdfu8),
        (0xe0, 0xef),
        (0xf0, 0xf7),
        (0xf8, 0xfb),
        (0xfc, 0xfd),
    ]
    .iter()
    .map(|&(low, high)| (low..high).flat_map(|b| [b, 0x20]).collect())
    .collect();
    let missing: Vec<Vec<u8>> = [
        &b"\xc0"[..],
        b"\xe0\x80",
        b"\xf0\x80\x80",
        b"\xf8\x80\x80\x80",
        b"\xfc\x80\x80\x80\x80",
        b"\xdf",
        b"\xef\xbf",
        b"\xf7\xbf\xbf",
        b"\xfb\xbf\xbf\xbf",
        b"\xfd\xbf\xbf\xbf\xbf",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();

    vec![
        (
            "Some valid UTF-8 sequences",
            vec![
                v(b"hello\x24world"),
                v(b"hello\xc2\xa2world"),
                v(b"hello\xe2\x82\xacworld"),
                v(b"hello\xf0\xa4\xad\xa2world"),
                v(KOSME),
            ],
        ),
        (
            "The prefixes of a valid UTF-8 text with multi-byte code points",
            prefixes,
        ),
        (
            "First possible sequence of a certain length",
            vec![
                v(b"\x00"),
                v(b"\xc2\x80"),
                v(b"\xe0\xa0\x80"),
                v(b"\xf0\x90\x80\x80"),
            ],
        ),
        (
            "First possible sequence of length 5 and 6 (invalid code points)",
            vec![v(b"\xf8\x88\x80\x80\x80"), v(b"\xfc\x84\x80\x80\x80\x80")],
        ),
        (
            "Last possible sequence of a certain length",
            vec![
                v(b"\x7f"),
                v(b"\xdf\xbf"),
                v(b"\xef\xbf\xbf"),
                v(b"\xf4\x8f\xbf\xbf"),
            ],
        ),
        (
            "Last possible sequence of length 4, 5 and 6 (invalid code points)",
            vec![
                v(b"\xf7\xbf\xbf\xbf"),
                v(b"\xfb\xbf\xbf\xbf\xbf"),
                v(b"\xfd\xbf\xbf\xbf\xbf\xbf"),
            ],
        ),
        (
            "Other boundary conditions",
            vec![
                v(b"\xed\x9f\xbf"),
                v(b"\xee\x80\x80"),
                v(b"\xef\xbf\xbd"),
                v(b"\xf4\x8f\xbf\xbf"),
                v(b"\xf4\x90\x80\x80"),
            ],
        ),
        (
            "Unexpected continuation bytes",
            vec![
                v(b"\x80"),
                v(b"\xbf"),
                v(b"\x80\xbf"),
                v(b"\x80\xbf\x80"),
                v(b"\x80\xbf\x80\xbf"),
                v(b"\x80\xbf\x80\xbf\x80"),
                v(b"\x80\xbf\x80\xbf\x80\xbf"),
                continuations,
            ],
        ),
        ("Lonely start bytes, each followed by a space", lonely),
        (
            "Sequences with the last continuation byte missing",
            missing.clone(),
        ),
        (
            "Concatenation of incomplete sequences",
            vec![missing.concat()],
        ),
        (
            "Impossible bytes",
            vec![v(b"\xfe"), v(b"\xff"), v(b"\xfe\xfe\xff\xff")],
        ),
        (
            "Overlong forms of an ASCII character",
            vec![
                v(b"\xc0\xaf"),
                v(b"\xe0\x80\xaf"),
                v(b"\xf0\x80\x80\xaf"),
                v(b"\xf8\x80\x80\x80\xaf"),
                v(b"\xfc\x80\x80\x80\x80\xaf"),
            ],
        ),
        (
            "Maximum overlong sequences",
            vec![
                v(b"\xc1\xbf"),
                v(b"\xe0\x9f\xbf"),
                v(b"\xf0\x8f\xbf\xbf"),
                v(b"\xf8\x87\xbf\xbf\xbf"),
                v(b"\xfc\x83\xbf\xbf\xbf\xbf"),
            ],
        ),
        (
            "Overlong forms of the NUL character",
            vec![
                v(b"\xc0\x80"),
                v(b"\xe0\x80\x80"),
                v(b"\xf0\x80\x80\x80"),
                v(b"\xf8\x80\x80\x80\x80"),
                v(b"\xfc\x80\x80\x80\x80\x80"),
            ],
        ),
        (
            "Single UTF-16 surrogates",
            vec![
                v(b"\xed\xa0\x80"),
                v(b"\xed\xad\xbf"),
                v(b"\xed\xae\x80"),
                v(b"\xed\xaf\xbf"),
                v(b"\xed\xb0\x80"),
                v(b"\xed\xbe\x80"),
                v(b"\xed\xbf\xbf"),
            ],
        ),
        (
            "Paired UTF-16 surrogates",
            vec![
                v(b"\xed\xa0\x80\xed\xb0\x80"),
                v(b"\xed\xa0\x80\xed\xbf\xbf"),
                v(b"\xed\xad\xbf\xed\xb0\x80"),
                v(b"\xed\xad\xbf\xed\xbf\xbf"),
                v(b"\xed\xae\x80\xed\xb0\x80"),
                v(b"\xed\xae\x80\xed\xbf\xbf"),
                v(b"\xed\xaf\xbf\xed\xb0\x80"),
                v(b"\xed\xaf\xbf\xed\xbf\xbf"),
            ],
        ),
        ("Non-character code points (valid UTF-8)", noncharacters()),
        (
            "Unicode specials such as the replacement character",
            vec![
                v(b"\xef\xbf\xb9"),
                v(b"\xef\xbf\xba"),
                v(b"\xef\xbf\xbb"),
                v(b"\xef\xbf\xbc"),
                v(b"\xef\xbf\xbd"),
                v(b"\xef\xbf\xbe"),
                v(b"\xef\xbf\xbf"),
            ],
        ),
    ]
}

/// The non-characters U+FFFE, U+FFFF and the last two code points of planes
/// 1 to 16, in UTF-8.
fn noncharacters() -> Vec<Vec<u8>> {
    let mut out = vec![b"\xef\xbf\xbe".to_vec(), b"\xef\xbf\xbf".to_vec()];
    for lead in 0xf0u8..=0xf4 {
        for second in [0x8fu8, 0x9f, 0xaf, 0xbf] {
            if lead == 0xf4 && second != 0x8f {
                continue;
            }
            for last in [0xbeu8, 0xbf] {
                // F0 8F .. is an overlong form, not a plane-0 code point.
                if lead == 0xf0 && second == 0x8f {
                    continue;
                }
                out.push(vec![lead, second, 0xbf, last]);
            }
        }
    }
    out
}

fn kuhn_cases() -> Vec<WsCase> {
    let mut cases = Vec::new();

    for (group, (title, sequences)) in kuhn_groups().into_iter().enumerate() {
        for (index, bytes) in sequences.iter().enumerate() {
            let id = format!("6.{}.{}", group + 5, index + 1);
            let valid = std::str::from_utf8(bytes).is_ok();
            let verdict = if valid { "valid" } else { "invalid" };
            let about = format!("{title} ({verdict} UTF-8).");
            let payload = Expr::hex(bytes);
            let base = case(&id, &about).with(vec![frame(TEXT, payload.clone())]);
            cases.push(if valid {
                base.expect(EventKind::Text, payload).closed_normally()
            } else {
                base.failed(1007)
            });
        }
    }
    cases
}

fn close() -> Vec<WsCase> {
    let hello = || text("Hello World!");
    let bad_reason = close_payload(1000)
        .then(Expr::hex(KOSME))
        .then(Expr::hex(b"\xed\xa0\x80edited"));
    let big = Expr::repeat(Term::Text("BAsd7&jh23".to_owned()), 26_214).then(text("BAsd"));
    let mut cases = vec![
        case("7.1.1", "A text message, then a normal close.")
            .with(vec![frame(TEXT, hello())])
            .expect(EventKind::Text, hello())
            .closed_normally(),
        case(
            "7.1.2",
            "Two close frames back to back: the second is ignored.",
        )
        .with(vec![
            frame(CLOSE, close_payload(1000)),
            frame(CLOSE, close_payload(1000)),
        ])
        .closed_with(&[Some(1000)]),
        case("7.1.3", "A close, then a ping: the ping is not answered.")
            .with(vec![
                frame(CLOSE, close_payload(1000)),
                frame(PING, hello()),
            ])
            .closed_with(&[Some(1000)]),
        case(
            "7.1.4",
            "A close, then a text message: the message is not echoed.",
        )
        .with(vec![
            frame(CLOSE, close_payload(1000)),
            frame(TEXT, hello()),
        ])
        .closed_with(&[Some(1000)]),
        case(
            "7.1.5",
            "A text fragment, a close, then the final fragment: nothing is echoed.",
        )
        .with(vec![
            fragment(TEXT, text("fragment1")),
            frame(CLOSE, close_payload(1000)),
            frame(CONT, text("fragment2")),
        ])
        .closed_with(&[Some(1000)]),
        case(
            "7.1.6",
            "A 256 KiB text, a short text, a close and a ping, back to back.",
        )
        .note("Autobahn grades this INFORMATIONAL: the texts may or may not come back")
        .note("before the close; a close code other than 1000 or a pong fails here.")
        .with(vec![
            frame(TEXT, big.clone()),
            frame(TEXT, hello()),
            frame(CLOSE, close_payload(1000)),
            frame(PING, text("")),
        ])
        .expect(EventKind::Text, big.clone())
        .expect(EventKind::Text, hello())
        .or_expect(
            "no echo: the close was handled before the texts were echoed (NON-STRICT)",
            Vec::new(),
        )
        .or_expect(
            "only the big text: the close was handled before the short one was echoed",
            vec![expected(EventKind::Text, big)],
        )
        .closed_with(&[Some(1000)]),
        case("7.3.1", "A close frame without payload.")
            .note("RFC 6455 5.5.1 lets the answer carry no code; Autobahn accepts 1000 or none.")
            .with(vec![frame(CLOSE, text(""))])
            .closed_with(&[Some(1000), None]),
        case(
            "7.3.2",
            "A close frame with a payload of one byte, too short for a code.",
        )
        .with(vec![frame(CLOSE, text("a"))])
        .failed(1002),
        case("7.3.3", "A close frame with code 1000 and no reason.")
            .with(vec![frame(CLOSE, close_payload(1000))])
            .closed_with(&[Some(1000)]),
        case("7.3.4", "A close frame with code 1000 and a short reason.")
            .with(vec![frame(CLOSE, close_payload(1000).then(hello()))])
            .closed_with(&[Some(1000)]),
        case(
            "7.3.5",
            "A close frame with code 1000 and a reason of 123 bytes, the most.",
        )
        .with(vec![frame(CLOSE, close_payload(1000).then(stars(123)))])
        .closed_with(&[Some(1000)]),
        case(
            "7.3.6",
            "A close frame with code 1000 and a reason of 124 bytes, one too many.",
        )
        .with(vec![frame(CLOSE, close_payload(1000).then(stars(124)))])
        .failed(1002),
        case("7.5.1", "A close frame whose reason is not valid UTF-8.")
            .with(vec![frame(CLOSE, bad_reason)])
            .failed(1007),
    ];
    let valid = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ];
    for (index, code) in valid.iter().enumerate() {
        cases.push(
            case(
                &format!("7.7.{}", index + 1),
                &format!("A close with the valid code {code}."),
            )
            .note("RFC 6455 5.5.1: the answer echoes the code or says 1000; both pass.")
            .with(vec![frame(CLOSE, close_payload(*code))])
            .closed_with(&[Some(1000), Some(*code)]),
        );
    }
    let invalid = [0u16, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999];
    for (index, code) in invalid.iter().enumerate() {
        cases.push(
            case(
                &format!("7.9.{}", index + 1),
                &format!("A close with the invalid code {code}."),
            )
            .with(vec![frame(CLOSE, close_payload(*code))])
            .failed(1002),
        );
    }
    for (index, code) in [5000u16, 65535].iter().enumerate() {
        cases.push(
            case(
                &format!("7.13.{}", index + 1),
                &format!("A close with the code {code}."),
            )
            .note("RFC 6455 defines no code from 5000 on; Autobahn grades this INFORMATIONAL")
            .note("and accepts 1000, the echoed code or 1002. natter should answer 1002.")
            .with(vec![frame(CLOSE, close_payload(*code))])
            .closed_with(&[Some(1000), Some(*code), Some(1002)]),
        );
    }
    cases
}

const MIB: usize = 1 << 20;

/// A message of `len` bytes cut into frames of `size` bytes.
fn fragmented(opcode: u8, unit: &Term, len: usize, size: usize) -> Vec<Item> {
    let count = len.div_ceil(size);
    let piece = |bytes: usize| Expr::repeat(unit.clone(), bytes);
    if count <= 1 {
        return vec![frame(opcode, piece(len))];
    }

    let mut items = vec![fragment(opcode, piece(size))];
    let middle = count - 2;
    if middle > 0 {
        let mut spec = FrameSpec::new(CONT, piece(size));
        spec.fin = false;
        spec.times = middle;
        items.push(Item::Frame(spec));
    }
    items.push(frame(CONT, piece(len - size * (count - 1))));
    items
}

fn limits() -> Vec<WsCase> {
    let star = Term::Text("*".to_owned());
    let fe = Term::Hex(vec![0xfe]);
    let kinds = [
        (EventKind::Text, TEXT, &star, "text"),
        (EventKind::Binary, BINARY, &fe, "binary"),
    ];
    let mut cases = Vec::new();

    for (group, (kind, opcode, unit, name)) in kinds.iter().enumerate() {
        let sizes = [64 * 1024, 256 * 1024, MIB, 4 * MIB, 8 * MIB, 16 * MIB];
        for (index, size) in sizes.iter().enumerate() {
            let payload = Expr::repeat((*unit).clone(), *size);
            let c = case(
                &format!("9.{}.{}", group + 1, index + 1),
                &format!("A {name} message of {} KiB in one frame.", size / 1024),
            )
            .with(vec![frame(*opcode, payload.clone())])
            .expect(*kind, payload)
            .closed_normally();
            cases.push(c);
        }
    }
    for (group, (kind, opcode, unit, name)) in kinds.iter().enumerate() {
        let frames = [64, 256, 1024, 4096, 16384, 65536, 262_144, MIB, 4 * MIB];
        for (index, size) in frames.iter().enumerate() {
            let about = format!("A {name} message of 4 MiB in frames of {size} bytes.");
            cases.push(
                case(&format!("9.{}.{}", group + 3, index + 1), &about)
                    .with(fragmented(*opcode, unit, 4 * MIB, *size))
                    .expect(*kind, Expr::repeat((*unit).clone(), 4 * MIB))
                    .closed_normally(),
            );
        }
    }
    for (group, (kind, opcode, unit, name)) in kinds.iter().enumerate() {
        for (index, chop) in [64, 128, 256, 512, 1024, 2048].iter().enumerate() {
            let about = format!("A {name} message of 1 MiB in one frame, sent in chops of {chop}.");
            let payload = Expr::repeat((*unit).clone(), MIB);
            cases.push(
                case(&format!("9.{}.{}", group + 5, index + 1), &about)
                    .with(vec![frame(*opcode, payload.clone())])
                    .deliver(Delivery::Chunks(*chop))
                    .expect(*kind, payload)
                    .closed_normally(),
            );
        }
    }
    for (group, (kind, opcode, unit, name)) in kinds.iter().enumerate() {
        for (index, size) in [0, 16, 64, 256, 1024, 4096].iter().enumerate() {
            let about = format!("1000 {name} messages of {size} bytes, each its own delivery.");
            let payload = Expr::repeat((*unit).clone(), *size);
            let mut spec = FrameSpec::new(*opcode, payload.clone());
            spec.times = 1000;
            let mut c = case(&format!("9.{}.{}", group + 7, index + 1), &about)
                .with(vec![Item::Frame(spec)])
                .deliver(Delivery::PerFrame)
                .closed_normally();
            c.expect.push(Expected {
                times: 1000,
                kind: *kind,
                payload,
            });
            cases.push(c);
        }
    }
    cases
}

fn misc() -> Vec<WsCase> {
    let star = Term::Text("*".to_owned());
    vec![case(
        "10.1.1",
        "A text message of 65536 bytes in frames of 1300 bytes.",
    )
    .with(fragmented(TEXT, &star, 65536, 1300))
    .expect(EventKind::Text, stars(65536))
    .closed_normally()]
}

fn natter() -> Vec<WsCase> {
    let over = 16 * MIB + 1;
    let mut unmasked = FrameSpec::new(TEXT, text("Hello, world!"));
    unmasked.mask = crate::vector::Mask::None;
    let mut too_big = FrameSpec::new(BINARY, Expr::repeat(Term::Hex(vec![0xfe]), over));
    too_big.split = vec![0];
    let half = Expr::repeat(Term::Text("*".to_owned()), 8 * MIB + 1);

    vec![
        case(
            "natter.1",
            "An unmasked frame from a client (RFC 6455 5.1).",
        )
        .with(vec![Item::Frame(unmasked)])
        .failed(1002),
        case(
            "natter.2",
            "A binary frame one byte over the 16 MiB echo limit, header first.",
        )
        .note("The declared length alone is over the limit: 1009 before any payload.")
        .with(vec![Item::Frame(too_big)])
        .failed_by(1009, 1),
        case(
            "natter.3",
            "A text message over the echo limit in two fragments of 8 MiB + 1.",
        )
        .with(vec![fragment(TEXT, half.clone()), frame(CONT, half)])
        .deliver(Delivery::PerFrame)
        .failed_by(1009, 2),
        case(
            "natter.4",
            "A ping with a payload of 126 bytes, header and payload apart.",
        )
        .note("The declared length of a control frame is checked before its payload.")
        .with(vec![Item::Frame({
            let mut spec = FrameSpec::new(PING, fe_bytes(126));
            spec.split = vec![0];
            spec
        })])
        .failed_by(1002, 1),
        case(
            "natter.5",
            "A ping between the two fragments of a binary message, one byte chops.",
        )
        .with(vec![
            fragment(BINARY, fe_bytes(10)),
            frame(PING, text("in between")),
            frame(CONT, fe_bytes(10)),
        ])
        .deliver(Delivery::Chunks(1))
        .expect(EventKind::Pong, text("in between"))
        .expect(EventKind::Binary, fe_bytes(20))
        .closed_normally(),
    ]
}
