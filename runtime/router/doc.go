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
// The package does not import the NATS client: [Matcher] and [Publisher] are satisfied by
// the store and by *bus.Bus, which the caller wires in. A Router holds no resources, is
// safe for concurrent use, and blocks only inside its Matcher and Publisher, for as long as
// they honour ctx.
package router
