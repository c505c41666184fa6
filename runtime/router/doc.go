// Package router turns what a global webhook's handle returned into events on the bus: it
// finds the subscriptions each event is for, wraps the event in one envelope per matched
// subscription, and publishes all of them at once.
//
// The routing rule (SPEC 2.3): an event of global webhook W of integration I reaches
// subscription S exactly when S belongs to a connection of I, its globalWebhookKey is W and
// its selector equals the event's. [Router.Route] asks its [Matcher] once per request, for
// all the request's distinct selectors, and hands every envelope to its [Publisher] in one
// call; it returns nil only when the publisher reported every message stored, which is
// when the caller may answer the external app with a 2xx.
//
// Subjects and envelopes follow SPEC 4:
//
//	events.{organizationId}.apps.app.event_received.{integrationKey}.{globalWebhookKey}.{eventKey}
//	events.{organizationId}.apps.{resource}.{eventName}.{id}
//
// Every part of a subject is one NATS token; a part that is empty or holds '.', '*', '>' or
// white space fails the whole call with [ErrInvalidSubjectToken] before anything is published,
// rather than landing an event on a wrong subject.
//
// De-duplication: each message carries an ID derived only from the request (the event's id
// when handle gave one, else the request's DeliveryKey and the event's index) and the
// subscription, so a sender's retry of the same request produces the same IDs and the bus
// stores each event once, within its duplicate window.
//
// Senders retry for days, far beyond that window, so the router also keeps a [Seen] record
// of each published event in the store, keyed by the integration, the webhook key and the
// event's id (else the sender's delivery id, Input.DeliveryID, and the event's position;
// an event with neither is not remembered), for Config.SeenTTL (a week
// by default). Route drops the events already seen before matching, publishes the others,
// and marks them seen only after the bus acknowledged them: an event whose publish failed
// is never marked, so the sender's retry publishes it. A request whose events were all seen
// publishes nothing and succeeds. Two copies of one request arriving at once both pass the
// lookup; the bus's duplicate window (message IDs) drops the second. Events that matched no
// subscription are not marked: nothing was published to repeat. Calls to the Matcher and to
// Seen are bounded by Config.StoreTimeout, so an unreachable store fails a request quickly.
//
// The package does not import the NATS client: [Matcher] and [Publisher] are satisfied by
// the store and by *bus.Bus, which the caller wires in. A Router holds no resources, is
// safe for concurrent use, and blocks only inside its Matcher and Publisher, for as long as
// they honour ctx.
package router
