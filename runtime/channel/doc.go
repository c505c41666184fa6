// Package channel runs declarative channels (SPEC 2.4): it recognises and extracts events
// from what a channel receives, with the channel's event definitions (typePath, idPath,
// payloadPath, schema), and publishes each event to the bus once per channel subscription
// of the connection whose event type equals the event's.
//
// Four kinds, one switch:
//
//   - webhook and cloudevents channels are pushed to: the API hands every request to
//     /hooks/{channelId} to [Manager.Receive], which resolves the id to a connection's
//     channel, extracts (CloudEvents: structured, binary and batch HTTP modes, through
//     cloudevents/sdk-go) and publishes, returning only after the bus acknowledged.
//   - sse and polling channels are pulled: while a connection's channel has subscriptions,
//     one worker holds an SSE stream to the connector's API (reconnecting with backoff and
//     Last-Event-ID) or polls a path every interval, and publishes what is new.
//
// Publishing: subject events.{customerId}.apps.app.event_received.{integrationKey}.{channelKey}.{eventType}
// (the event type keeps its dots, see router.ChannelEventSubject), envelope per SPEC 4
// with metadata.channel and metadata.eventType set, metadata.globalWebhookKey and selector
// empty strings, metadata.eventId the extracted id. Every message carries a de-duplication
// id derived from the connection, the channel, the event (its extracted id, or a hash of
// what arrived) and the subscription, so a resent event is stored once by the bus within its
// duplicate window. A payload that fails its schema is not published: it is logged (type
// and schema issues, never the payload) and counted.
//
// Ownership and lifecycle: [Manager.Run] is the supervisor and the only goroutine that
// starts and stops workers; it owns the set of workers and nobody else touches it. On start
// it lists every (connection, channel) with channel subscriptions and starts the workers of
// the sse and polling ones; [Manager.Changed] (called by the API after a subscribe,
// unsubscribe or connection delete) asks it to look at one channel again, and a periodic
// resync catches what no call reported (another process's changes). The decision to run or
// stop a worker is taken in one place, the unexported Manager.apply.
//
// Several processes (instances) of one deployment share the workers through [Leases]: a
// worker runs only on the instance holding its (connection, channel)'s lease, a key in a
// JetStream KeyValue bucket. apply starts a worker only after taking its lease; a channel
// whose lease another instance holds waits in standby, and Run tries to take the leases of
// its standby channels every TTL/2, so a dead instance's channels move within about 1.5 ×
// TTL. Run also watches the bucket for released leases and looks at their channels at once,
// so a stopped instance's channels (it released their leases) move within moments. While a
// worker runs, its lease is renewed every TTL/3 beside it; a lost lease, or one not renewed
// for 2/3 of the TTL, stops the worker at once, before anyone else can take the lease. The
// lease is released only after the worker returned, its cursor stored, so that the next
// holder resumes where it stopped. Without Leases (a single instance) every worker runs here.
//
// A worker owns its HTTP connection, its backoff state and its channel's cursor while it
// runs; it stops when its ctx is cancelled (Run ending, or its last subscription gone), and
// Run returns only after every worker has returned. A worker whose last subscription went
// away clears its cursor, so a later subscription starts from now rather than replaying.
//
// Cursors: a polling worker stores its discriminator's high-water mark, an SSE worker the
// stream's Last-Event-ID, each only after the bus acknowledged the events before it, so a
// restart neither replays (beyond what the bus de-duplicates) nor skips.
package channel
