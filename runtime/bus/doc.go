// Package bus publishes switchboard's events to NATS JetStream and runs the in-process NATS
// server used when no external NATS is configured.
//
// # Publishing
//
// [Connect] (or [Embedded.Connect]) returns a [*Bus] holding one NATS connection. On connect
// it makes sure the events stream exists: it creates it when missing (file storage, the
// configured subjects, a de-duplication window, limits retention with a maximum age), uses
// an existing stream of that name as it is (an operator's settings win), and when another
// stream already captures the subjects it finds that stream and uses it instead.
//
// [Bus.Publish] and [Bus.PublishAll] return nil only after JetStream acknowledged every
// message, that is, after the messages are stored in the stream. A message's ID is sent as
// the Nats-Msg-Id header, so a publish retried with the same ID inside the stream's
// duplicate window is stored once. Neither blocks longer than the caller's ctx or the
// configured publish timeout, whichever ends first. When NATS is not connected they fail at
// once, without buffering. Failures a caller should answer with "try again later" (not
// connected, JetStream not answering, no acknowledgement in time, too many publishes in
// flight) wrap [ErrUnavailable]; a cancelled ctx is returned as the ctx's error.
//
// The connection reconnects forever in the background and re-checks the stream after each
// reconnect; Publish and Ping meanwhile fail fast with [ErrUnavailable].
//
// # Ownership
//
// A Bus is safe for concurrent use. Whoever connected it calls [Bus.Close], which drains the
// connection: publishes still in flight get their acknowledgements, then the connection
// closes. [Bus.Conn] and [Bus.JetStream] expose the connection for consumers (delivery
// workers, the WebSocket stream); they are owned by the Bus and must not be closed by their
// users.
//
// [StartEmbedded] starts an in-process nats-server with JetStream whose files live under
// DataDir/nats and so survive a restart. Its owner closes every Bus connected to it first,
// then calls [Embedded.Shutdown].
package bus
