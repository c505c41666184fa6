package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// bodyShape says what requests look like.
type bodyShape struct {
	Size  int     // approximate body size in bytes
	Users int64   // users 0..Users-1 have subscriptions (setup's -subscriptions / -per-user)
	Match float64 // the fraction of requests from a subscribed user
	Nonce string  // makes bodies unique across runs: switchboard de-duplicates repeated bodies
}

// bodyMaker builds request bodies: a Slack-like event of about Size bytes whose
// from_user_id is drawn per request and whose event_id is unique, so that no two requests
// (in this run or another with a different Nonce) are de-duplicated by the bus. One
// bodyMaker is used by one goroutine.
type bodyMaker struct {
	shape  bodyShape
	rng    *rand.Rand
	seq    uint64
	prefix string // up to the event id
	middle string // from after the event id up to the user id
	suffix string
}

func newBodyMaker(shape bodyShape, seed uint64) *bodyMaker {
	m := &bodyMaker{shape: shape, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	m.prefix = `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","team_id":"T024BE7LD","api_app_id":"A0KRD7HC3",` +
		`"type":"event_callback","event_time":1700000000,"event_id":"Ev` + shape.Nonce + `-`
	m.middle = `","from_user_id":`
	tail := `,"event":{"type":"message","channel":"C2147483705","channel_type":"channel",` +
		`"ts":"1355517523.000005","client_msg_id":"e0b5b0a1-1f2b-4c3d-9e8f-0a1b2c3d4e5f",` +
		`"blocks":[{"type":"rich_text","block_id":"Bk1","elements":[{"type":"rich_text_section",` +
		`"elements":[{"type":"text","text":"deploy finished"},{"type":"user","user_id":"U0LAN0Z89"}]}]}],` +
		`"attachments":[],"reactions":[{"name":"rocket","count":2,"users":["U0LAN0Z89","U0G9QF9C6"]}]},` +
		`"authorizations":[{"enterprise_id":null,"team_id":"T024BE7LD","user_id":"U0LAN0Z89",` +
		`"is_bot":false,"is_enterprise_install":false}],"is_ext_shared_channel":false}`
	// Pad with message text so that a body with a typical id length is about Size bytes.
	fixed := len(m.prefix) + len(m.middle) + len(tail) + len(`,"text":""`) + 8 + 7
	pad := max(shape.Size-fixed, 0)
	const words = "the nightly build of service api-gateway finished in 4m12s with 0 failures; " +
		"artifacts are uploaded and the canary is healthy. "
	text := strings.Repeat(words, pad/len(words)+1)[:pad]
	m.suffix = `,"text":"` + text + `"` + tail
	return m
}

// next returns a new body and whether its user has subscriptions.
func (m *bodyMaker) next() ([]byte, bool) {
	user, matched := m.user()
	m.seq++
	b := make([]byte, 0, len(m.prefix)+len(m.middle)+len(m.suffix)+40)
	b = append(b, m.prefix...)
	b = strconv.AppendUint(b, m.seq, 36)
	b = strconv.AppendUint(b, m.rng.Uint64()&0xffffff, 36)
	b = append(b, m.middle...)
	b = strconv.AppendInt(b, user, 10)
	b = append(b, m.suffix...)
	return b, matched
}

// user draws a from_user_id: a subscribed one (0..Users-1) with probability Match, else one
// in Users..2*Users-1 (or beyond 10^12 without subscribed users), which nobody subscribed to.
func (m *bodyMaker) user() (int64, bool) {
	u := m.shape.Users
	if u <= 0 {
		return 1_000_000_000_000 + m.rng.Int64N(1_000_000_000), false
	}
	if m.rng.Float64() < m.shape.Match {
		return m.rng.Int64N(u), true
	}
	return u + m.rng.Int64N(u), false
}
