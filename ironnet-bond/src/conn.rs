//! The metalbond connection state machine, without I/O: messages and the
//! current time go in, messages to send, events and the next deadline come
//! out (the shape of quinn-proto).
//!
//! ```text
//! client (dialled)                      server (accepted)
//!  HELLO{ka=Kc}          ───────►        HELLO received: ka = min(Ks, Kc)
//!  state HELLO_SENT      ◄───────        HELLO{ka, isServer}; state HELLO_SENT
//!  HELLO received: ka = min(Kc, ka)
//!  state HELLO_RECEIVED
//!  KEEPALIVE             ───────►        KEEPALIVE in HELLO_SENT → ESTABLISHED
//!                        ◄───────        KEEPALIVE (echo)
//!  KEEPALIVE in HELLO_RECEIVED → ESTABLISHED
//! ```
//!
//! The client sends a KEEPALIVE every `ka`; the server echoes each one.
//! Each side closes the connection when nothing arrived for 2.5 × `ka`
//! (metalbond counts only KEEPALIVE; here an UPDATE counts too, so a long
//! subscribe dump ahead of the echo is no timeout), and, unlike metalbond,
//! when the handshake does not finish within 2.5 × its own interval. A HELLO with interval 0, a message that does not
//! fit the state, or SUBSCRIBE/UNSUBSCRIBE sent to a client closes the
//! connection with a typed reason. What to do once ESTABLISHED (re-send
//! subscriptions and announcements) is the owner's job: it sees
//! [`Event::Established`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::codec::Message;
use crate::error::CodecError;

/// Which end of the TCP connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Dialled out (metalbond's OUTGOING); sends keepalives, may subscribe.
    Client,
    /// Accepted (INCOMING); echoes keepalives, receives subscriptions.
    Server,
}

/// Connection state, as metalbond numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for the peer's HELLO (server side).
    Connecting,
    /// Our HELLO is out.
    HelloSent,
    /// Both HELLOs exchanged (client side), waiting for the echo.
    HelloReceived,
    /// Routes may flow.
    Established,
    /// Closed; see the [`Event::Closed`] reason.
    Closed,
}

/// Why a connection was closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// No KEEPALIVE within 2.5 × the interval.
    #[error("no keepalive for {0:?}")]
    KeepaliveTimeout(Duration),
    /// The handshake did not finish in time.
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer asked for a keepalive interval of 0.
    #[error("peer announced keepalive interval 0")]
    ZeroKeepalive,
    /// A message that the state does not allow.
    #[error("unexpected {message} in state {state:?}")]
    Unexpected {
        /// Message kind.
        message: &'static str,
        /// State it arrived in.
        state: State,
    },
    /// The byte stream could not be decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The peer did not read what it was sent fast enough.
    #[error("slow consumer: {pending} bytes not yet written")]
    SlowConsumer {
        /// Bytes queued when the limit was hit.
        pending: usize,
    },
    /// Closed by the owner.
    #[error("closed locally")]
    Local,
    /// The transport ended.
    #[error("transport closed")]
    Transport,
}

/// What happened, for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake finished; the negotiated keepalive interval.
    Established(Duration),
    /// SUBSCRIBE, UNSUBSCRIBE or UPDATE from the peer.
    Received(Message),
    /// The connection is closed.
    Closed(CloseReason),
}

/// A message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// Routes and subscriptions flow only once ESTABLISHED.
    #[error("connection not established (state {0:?})")]
    NotEstablished(State),
    /// Only a client subscribes.
    #[error("a server does not subscribe")]
    ServerSubscribe,
    /// HELLO and KEEPALIVE belong to the state machine.
    #[error("HELLO and KEEPALIVE are sent by the state machine")]
    Control,
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello { .. } => "HELLO",
        Message::Keepalive => "KEEPALIVE",
        Message::Subscribe(_) => "SUBSCRIBE",
        Message::Unsubscribe(_) => "UNSUBSCRIBE",
        Message::Update(..) => "UPDATE",
    }
}

/// One metalbond connection.
#[derive(Debug, Clone)]
pub struct Connection {
    role: Role,
    state: State,
    my_keepalive_secs: u32,
    keepalive: Option<Duration>,
    next_keepalive: Option<Instant>,
    deadline: Instant,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
}

fn timeout_of(interval: Duration) -> Duration {
    interval * 5 / 2
}

impl Connection {
    /// A connection whose transport just came up. `keepalive_secs` is this
    /// side's interval (at least 1). A client queues its HELLO at once.
    pub fn new(role: Role, keepalive_secs: u32, now: Instant) -> Self {
        let keepalive_secs = keepalive_secs.max(1);
        let mut c = Connection {
            role,
            state: State::Connecting,
            my_keepalive_secs: keepalive_secs,
            keepalive: None,
            next_keepalive: None,
            deadline: now + timeout_of(Duration::from_secs(u64::from(keepalive_secs))),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        };
        if role == Role::Client {
            c.transmit.push_back(Message::Hello {
                keepalive_secs,
                is_server: false,
            });
            c.state = State::HelloSent;
        }
        c
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The negotiated keepalive interval, once HELLOs were exchanged.
    pub fn keepalive(&self) -> Option<Duration> {
        self.keepalive
    }

    /// Whether routes may be sent.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Closes the connection for `reason` (idempotent).
    pub fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.transmit.clear();
            self.events.push_back(Event::Closed(reason));
        }
    }

    fn arm(&mut self, now: Instant) {
        if let Some(ka) = self.keepalive {
            self.deadline = now + timeout_of(ka);
        }
    }

    fn negotiate(&mut self, theirs: u32) -> Option<Duration> {
        if theirs == 0 {
            self.close(CloseReason::ZeroKeepalive);
            return None;
        }
        let ka = Duration::from_secs(u64::from(theirs.min(self.my_keepalive_secs)));
        self.keepalive = Some(ka);
        Some(ka)
    }

    /// A message from the peer.
    pub fn handle(&mut self, now: Instant, msg: Message) {
        if self.state == State::Closed {
            return;
        }
        let unexpected = |state| CloseReason::Unexpected {
            message: kind(&msg),
            state,
        };
        match (self.role, self.state, msg) {
            (Role::Server, State::Connecting, Message::Hello { keepalive_secs, .. }) => {
                let Some(ka) = self.negotiate(keepalive_secs) else {
                    return;
                };
                self.arm(now);
                self.transmit.push_back(Message::Hello {
                    keepalive_secs: ka.as_secs() as u32,
                    is_server: true,
                });
                self.state = State::HelloSent;
            }
            (Role::Client, State::HelloSent, Message::Hello { keepalive_secs, .. }) => {
                let Some(ka) = self.negotiate(keepalive_secs) else {
                    return;
                };
                self.arm(now);
                self.state = State::HelloReceived;
                self.transmit.push_back(Message::Keepalive);
                self.next_keepalive = Some(now + ka);
            }
            (Role::Server, State::HelloSent | State::Established, Message::Keepalive) => {
                self.arm(now);
                self.transmit.push_back(Message::Keepalive);
                self.establish();
            }
            (Role::Client, State::HelloReceived | State::Established, Message::Keepalive) => {
                self.arm(now);
                self.establish();
            }
            (
                Role::Server,
                State::Established,
                m @ (Message::Subscribe(_) | Message::Unsubscribe(_)),
            ) => {
                self.events.push_back(Event::Received(m));
            }
            (_, State::Established, m @ Message::Update(..)) => {
                // Any message proves the peer alive: a long subscribe dump
                // delays the KEEPALIVE echo queued behind it.
                self.arm(now);
                self.events.push_back(Event::Received(m));
            }
            (_, state, _) => self.close(unexpected(state)),
        }
    }

    fn establish(&mut self) {
        if self.state != State::Established {
            self.state = State::Established;
            if let Some(ka) = self.keepalive {
                self.events.push_back(Event::Established(ka));
            }
        }
    }

    /// Time passed: sends due keepalives, closes on expired deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now >= self.deadline {
            let reason = match self.keepalive {
                Some(ka) if self.state == State::Established => {
                    CloseReason::KeepaliveTimeout(timeout_of(ka))
                }
                Some(ka) => CloseReason::HandshakeTimeout(timeout_of(ka)),
                None => CloseReason::HandshakeTimeout(timeout_of(Duration::from_secs(u64::from(
                    self.my_keepalive_secs,
                )))),
            };
            self.close(reason);
            return;
        }
        if let (Some(at), Some(ka)) = (self.next_keepalive, self.keepalive)
            && now >= at
        {
            self.transmit.push_back(Message::Keepalive);
            // Skip missed ticks rather than bursting.
            let mut next = at + ka;
            while next <= now {
                next += ka;
            }
            self.next_keepalive = Some(next);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        Some(match self.next_keepalive {
            Some(at) => at.min(self.deadline),
            None => self.deadline,
        })
    }

    /// The next message to write to the transport.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues SUBSCRIBE, UNSUBSCRIBE or UPDATE.
    pub fn send(&mut self, msg: Message) -> Result<(), SendError> {
        match msg {
            Message::Hello { .. } | Message::Keepalive => return Err(SendError::Control),
            Message::Subscribe(_) | Message::Unsubscribe(_) if self.role == Role::Server => {
                return Err(SendError::ServerSubscribe);
            }
            _ => {}
        }
        if self.state != State::Established {
            return Err(SendError::NotEstablished(self.state));
        }
        self.transmit.push_back(msg);
        Ok(())
    }
}
