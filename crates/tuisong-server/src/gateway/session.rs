//! One device session as a state machine, with no socket, hub or store in it: it is told
//! what happened (a device frame, a pushed inbox entry, a page of backlog, a ping tick)
//! and answers with the `Action`s to take, which the driver (`driver.rs`) carries out.
//!
//! What it owns: the hello handshake (the first frame must be `hello`; the answer is
//! register, `welcome`, catch up), the cursor (`next`, the seq the device is owed next:
//! older entries are duplicates and skipped, newer ones mean a gap and a catch-up), the
//! device's liveness (silent for more than two ping intervals → the session ends), and
//! what each device frame asks for.

use std::time::Duration;
use tokio::time::Instant;
use tuisong_core::Error;
use tuisong_core::service::Platform;
use tuisong_wire::device::{ClientFrame, ServerFrame, clean_device_name};

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Join the hub. Comes before the backlog is read, so nothing published during the
    /// catch-up is missed: it is either in the backlog or in the channel (then skipped).
    Register,
    Send(ServerFrame),
    /// Read the inbox from `Session::next()` on, a page at a time, into `on_backlog`.
    CatchUp,
    Ack(u64),
    Open(u64),
    Unsubscribe(u64),
    /// End the session with this error.
    Fail(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    Live { next: u64, device: String },
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Session {
    user_id: String,
    phase: Phase,
    ping_every: Duration,
    last_heard: Instant,
}

impl Session {
    pub fn new(user_id: impl Into<String>, ping_every: Duration, now: Instant) -> Session {
        Session {
            user_id: user_id.into(),
            phase: Phase::AwaitingHello,
            ping_every,
            last_heard: now,
        }
    }

    /// The seq the device is owed next (0 before hello).
    pub fn next(&self) -> u64 {
        match &self.phase {
            Phase::Live { next, .. } => *next,
            Phase::AwaitingHello => 0,
        }
    }

    /// The device's name on timelines (empty before hello).
    pub fn device(&self) -> &str {
        match &self.phase {
            Phase::Live { device, .. } => device,
            Phase::AwaitingHello => "",
        }
    }

    /// Anything arrived from the device (a frame of any kind counts as a pong).
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// A text frame from the device.
    pub fn on_client_text(&mut self, text: &str) -> Vec<Action> {
        let frame = serde_json::from_str::<ClientFrame>(text);
        match (&self.phase, frame) {
            // The store numbers entries in signed 64 bits: a larger cursor names nothing
            // and would wrap. Refused before the session joins the hub.
            (Phase::AwaitingHello, Ok(ClientFrame::Hello { cursor, .. }))
                if cursor > Platform::MAX_CURSOR =>
            {
                vec![
                    Action::Send(ServerFrame::error(format!(
                        "cursor must be at most {}",
                        Platform::MAX_CURSOR
                    ))),
                    Action::Fail("the hello cursor was out of range".into()),
                ]
            }
            (Phase::AwaitingHello, Ok(ClientFrame::Hello { cursor, device })) => {
                let device = device
                    .as_deref()
                    .and_then(clean_device_name)
                    .unwrap_or_else(|| "device".to_owned());
                self.phase = Phase::Live {
                    next: cursor + 1,
                    device,
                };
                vec![
                    Action::Register,
                    Action::Send(ServerFrame::Welcome {
                        user_id: self.user_id.clone(),
                        cursor,
                    }),
                    Action::CatchUp,
                ]
            }
            (Phase::AwaitingHello, _) => vec![
                Action::Send(ServerFrame::error("the first frame must be hello")),
                Action::Fail("first frame was not hello".into()),
            ],
            (Phase::Live { .. }, Err(e)) => {
                vec![Action::Send(ServerFrame::error(format!("bad frame: {e}")))]
            }
            (Phase::Live { .. }, Ok(frame)) => match frame {
                ClientFrame::Ack { msgid } => vec![Action::Ack(msgid)],
                ClientFrame::Open { msgid } => vec![Action::Open(msgid)],
                ClientFrame::Unsubscribe { msgid } => vec![Action::Unsubscribe(msgid)],
                ClientFrame::Ping => vec![Action::Send(ServerFrame::Ping)],
                ClientFrame::Pong => vec![],
                ClientFrame::Hello { .. } => {
                    vec![Action::Send(ServerFrame::error(
                        "hello was already received",
                    ))]
                }
            },
        }
    }

    /// An entry the hub pushed, with its frame (made only if it is sent; None for a card
    /// that is gone).
    pub fn on_push(
        &mut self,
        seq: u64,
        frame: impl FnOnce() -> Option<ServerFrame>,
    ) -> Vec<Action> {
        let Phase::Live { next, .. } = &mut self.phase else {
            return vec![];
        };
        if seq < *next {
            return vec![];
        }
        if seq > *next {
            return vec![Action::CatchUp];
        }
        *next += 1;
        frame().map(Action::Send).into_iter().collect()
    }

    /// The hub's buffer for this session overflowed (or another node nudged it): what was
    /// buffered is dropped and the store is read instead.
    pub fn on_lagged(&self) -> Vec<Action> {
        vec![Action::CatchUp]
    }

    /// A page of the inbox read from `next()` on, as (seq, frame) pairs: the frames to
    /// send, in order. Moves `next` past the page.
    pub fn on_backlog(
        &mut self,
        page: impl IntoIterator<Item = (u64, Option<ServerFrame>)>,
    ) -> Vec<ServerFrame> {
        let Phase::Live { next, .. } = &mut self.phase else {
            return vec![];
        };
        let mut out = Vec::new();
        for (seq, frame) in page {
            out.extend(frame);
            *next = seq + 1;
        }
        out
    }

    /// The ping timer fired: ping, or give up on a device silent for two intervals.
    pub fn on_tick(&self, now: Instant) -> Vec<Action> {
        let silent = now.saturating_duration_since(self.last_heard);
        if silent > self.ping_every * 2 + Duration::from_secs(1) {
            return vec![Action::Fail(format!(
                "no frame from the device for {silent:?}"
            ))];
        }
        vec![Action::Send(ServerFrame::Ping)]
    }
}

/// The answer to `open`, from what the platform said (the message's appid and page):
/// `opened`, an `error` frame for an unknown msgid, or the error that ends the session.
pub fn opened(
    msgid: u64,
    result: Result<(String, Option<String>), Error>,
) -> Result<ServerFrame, Error> {
    match result {
        Ok((appid, page)) => Ok(ServerFrame::Opened { msgid, appid, page }),
        Err(Error::NotFound(_)) => Ok(no_message(msgid)),
        Err(e) => Err(e),
    }
}

/// The answer to `ack`: nothing when it was taken, an `error` frame for a msgid that is
/// not one of the user's (nothing was changed), or the error that ends the session.
pub fn acked(msgid: u64, result: Result<bool, Error>) -> Result<Option<ServerFrame>, Error> {
    match result {
        Ok(_) => Ok(None),
        Err(Error::NotFound(_)) => Ok(Some(no_message(msgid))),
        Err(e) => Err(e),
    }
}

/// The answer to `unsubscribe`: nothing when it worked, else an `error` frame (the
/// session stays open; the driver logs the cause).
pub fn unsubscribed(msgid: u64, result: Result<(), &Error>) -> Option<ServerFrame> {
    match result {
        Ok(()) => None,
        Err(Error::NotFound(_)) => Some(no_message(msgid)),
        Err(_) => Some(ServerFrame::error(format!(
            "could not unsubscribe from message {msgid}; try again"
        ))),
    }
}

fn no_message(msgid: u64) -> ServerFrame {
    ServerFrame::error(format!("no message {msgid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING: Duration = Duration::from_secs(30);

    fn live(cursor: u64) -> (Session, Instant) {
        let t0 = Instant::now();
        let mut s = Session::new("u1", PING, t0);
        let hello = format!(r#"{{"type":"hello","cursor":{cursor},"device":"phone-1"}}"#);
        s.on_client_text(&hello);
        (s, t0)
    }

    fn tomb(seq: u64) -> ServerFrame {
        ServerFrame::Recall {
            seq,
            msgid: seq * 10,
        }
    }

    fn recall(seq: u64) -> Option<ServerFrame> {
        Some(tomb(seq))
    }

    #[test]
    fn hello_registers_then_welcomes_then_catches_up_from_the_cursor() {
        let mut s = Session::new("u1", PING, Instant::now());
        let actions = s.on_client_text(r#"{"type":"hello","cursor":4,"device":"phone-1"}"#);
        assert_eq!(
            actions,
            [
                Action::Register,
                Action::Send(ServerFrame::Welcome {
                    user_id: "u1".into(),
                    cursor: 4
                }),
                Action::CatchUp,
            ]
        );
        assert_eq!(s.next(), 5);
        assert_eq!(s.device(), "phone-1");
    }

    #[test]
    fn hello_without_a_usable_device_name_is_named_device() {
        let mut s = Session::new("u1", PING, Instant::now());
        s.on_client_text(r#"{"type":"hello","device":"\u0007"}"#);
        assert_eq!((s.next(), s.device()), (1, "device"));
    }

    #[test]
    fn any_frame_before_hello_is_an_error_that_ends_the_session() {
        for first in [
            r#"{"type":"ack","msgid":1}"#,
            "not json",
            r#"{"type":"pong"}"#,
        ] {
            let mut s = Session::new("u1", PING, Instant::now());
            assert_eq!(
                s.on_client_text(first),
                [
                    Action::Send(ServerFrame::error("the first frame must be hello")),
                    Action::Fail("first frame was not hello".into()),
                ],
                "{first}"
            );
        }
    }

    #[test]
    fn device_frames_after_hello_become_actions() {
        let (mut s, _) = live(0);
        assert_eq!(
            s.on_client_text(r#"{"type":"ack","msgid":7}"#),
            [Action::Ack(7)]
        );
        assert_eq!(
            s.on_client_text(r#"{"type":"open","msgid":7}"#),
            [Action::Open(7)]
        );
        assert_eq!(
            s.on_client_text(r#"{"type":"unsubscribe","msgid":7}"#),
            [Action::Unsubscribe(7)]
        );
        assert_eq!(
            s.on_client_text(r#"{"type":"ping"}"#),
            [Action::Send(ServerFrame::Ping)]
        );
        assert_eq!(s.on_client_text(r#"{"type":"pong"}"#), []);
        assert_eq!(
            s.on_client_text(r#"{"type":"hello","cursor":0}"#),
            [Action::Send(ServerFrame::error(
                "hello was already received"
            ))]
        );
        let bad = s.on_client_text("{nope");
        assert!(
            matches!(&bad[..], [Action::Send(ServerFrame::Error { message })] if message.starts_with("bad frame: ")),
            "{bad:?}"
        );
    }

    #[test]
    fn a_hello_cursor_beyond_the_stores_range_is_refused_not_wrapped() {
        for cursor in [u64::MAX, Platform::MAX_CURSOR + 1] {
            let mut s = Session::new("u1", PING, Instant::now());
            let actions = s.on_client_text(&format!(r#"{{"type":"hello","cursor":{cursor}}}"#));
            assert_eq!(
                actions,
                [
                    Action::Send(ServerFrame::error(
                        "cursor must be at most 9223372036854775807"
                    )),
                    Action::Fail("the hello cursor was out of range".into()),
                ],
                "{cursor}"
            );
            assert_eq!(s.next(), 0, "still waiting for a usable hello");
        }
        let mut s = Session::new("u1", PING, Instant::now());
        let hello = format!(r#"{{"type":"hello","cursor":{}}}"#, Platform::MAX_CURSOR);
        assert_eq!(s.on_client_text(&hello)[0], Action::Register);
        assert_eq!(s.next(), Platform::MAX_CURSOR + 1);
    }

    #[test]
    fn the_backlog_sends_live_frames_and_moves_past_gone_ones() {
        let (mut s, _) = live(2);
        let sent = s.on_backlog([(3, recall(3)), (4, None), (5, recall(5))]);
        assert_eq!(sent, [tomb(3), tomb(5)]);
        assert_eq!(s.next(), 6);
        assert_eq!(s.on_backlog([]), []);
        assert_eq!(s.next(), 6);
    }

    #[test]
    fn pushed_entries_are_sent_once_in_order_and_a_gap_reads_the_store() {
        let (mut s, _) = live(0);
        assert_eq!(s.on_push(1, || recall(1)), [Action::Send(tomb(1))]);
        // A duplicate (already sent from the backlog or the channel) is skipped unmade.
        assert_eq!(s.on_push(1, || panic!("not made")), []);
        // A gone card still moves the cursor.
        assert_eq!(s.on_push(2, || None), []);
        assert_eq!(s.next(), 3);
        // A gap: the missing range comes from the store; the cursor waits for it.
        assert_eq!(s.on_push(5, || panic!("not made")), [Action::CatchUp]);
        assert_eq!(s.next(), 3);
        assert_eq!(s.on_lagged(), [Action::CatchUp]);
    }

    #[test]
    fn ticks_ping_until_the_device_is_silent_for_two_intervals() {
        let (mut s, t0) = live(0);
        assert_eq!(s.on_tick(t0 + PING), [Action::Send(ServerFrame::Ping)]);
        assert_eq!(
            s.on_tick(t0 + PING * 2 + Duration::from_secs(1)),
            [Action::Send(ServerFrame::Ping)]
        );
        let late = s.on_tick(t0 + PING * 3);
        assert!(
            matches!(&late[..], [Action::Fail(why)] if why.starts_with("no frame from the device")),
            "{late:?}"
        );
        // Anything heard resets the clock.
        s.heard(t0 + PING * 2);
        assert_eq!(s.on_tick(t0 + PING * 3), [Action::Send(ServerFrame::Ping)]);
    }

    #[test]
    fn ack_open_and_unsubscribe_answers() {
        assert_eq!(
            opened(7, Ok(("wx1".into(), Some("p".into())))).ok(),
            Some(ServerFrame::Opened {
                msgid: 7,
                appid: "wx1".into(),
                page: Some("p".into())
            })
        );
        assert_eq!(
            opened(7, Err(Error::NotFound("message"))).ok(),
            Some(ServerFrame::error("no message 7"))
        );
        assert!(opened(7, Err(Error::Unauthorized)).is_err());

        assert_eq!(acked(7, Ok(true)).ok(), Some(None));
        assert_eq!(acked(7, Ok(false)).ok(), Some(None));
        assert_eq!(
            acked(7, Err(Error::NotFound("message"))).ok(),
            Some(Some(ServerFrame::error("no message 7")))
        );
        assert!(acked(7, Err(Error::Unauthorized)).is_err());

        assert_eq!(unsubscribed(7, Ok(())), None);
        assert_eq!(
            unsubscribed(7, Err(&Error::NotFound("message"))),
            Some(ServerFrame::error("no message 7"))
        );
        assert_eq!(
            unsubscribed(7, Err(&Error::Unauthorized)),
            Some(ServerFrame::error(
                "could not unsubscribe from message 7; try again"
            ))
        );
    }
}
