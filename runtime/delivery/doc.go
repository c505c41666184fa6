// Package delivery POSTs routed events to the integrations' delivery endpoints (SPEC
// section 5): Standard Webhooks signing, retries on a schedule, dead letters and replay.
//
// # Design
//
// Two JetStream consumers, both durable, so that a restart resumes where the last process
// stopped and several processes sharing one NATS split the work (each message goes to one of
// them at a time):
//
//  1. The fan-out consumer ("switchboard-delivery") reads the routed events
//     (events.*.apps.app.event_received.>) from the events stream. For each event it looks up
//     the integration's enabled endpoints that want its event key and publishes one task per
//     endpoint to the deliveries stream (SWITCHBOARD_DELIVERIES, subject
//     deliveries.{integrationKey}.{endpointId}, work-queue retention, created if missing),
//     then acknowledges the event. Tasks carry the envelope's bytes as their body and a
//     Nats-Msg-Id of their webhook-id, so an event fanned out twice (a redelivery after a
//     crash) is stored once.
//  2. Each endpoint has a consumer of its own on its task subject ("endpoint-{key}-{id}").
//     That is the isolation: a slow or dead endpoint only ever holds back its own tasks. A
//     process pulls a task only when one of its Config.Concurrency slots for that endpoint is
//     free, and never buffers more. A failed attempt is a NakWithDelay by the retry schedule,
//     so the wait is JetStream's and survives restarts; the attempt number is the message's
//     delivery count. After the last retry the task becomes a dead letter in the store.
//
// The webhook-id of a message is derived from the event id and the endpoint id, so it is
// the same on every attempt and on a replay.
//
// # Ownership and concurrency
//
// A Service is made by New and run by Run, which owns every goroutine of the package: the
// fan-out consumer's callback, one reconciling loop, one runner per endpoint consumer (found
// by listing the deliveries stream's consumers, so consumers made by other processes are
// served too) and up to Concurrency attempts per runner. Run returns once all of them have
// stopped: an attempt in flight when ctx ends is abandoned and its task negatively
// acknowledged, to be tried again (by another process, or after the restart). Test, Replay
// and CheckURL are called by the API concurrently with Run and block only on their own
// network calls. Every outbound request goes through the egress guard: unless private
// networks are allowed, loopback and private addresses are refused where they are dialled.
//
// Endpoint secrets are store.Secret values, which log as [redacted]; nothing here logs a
// request body or header.
package delivery
