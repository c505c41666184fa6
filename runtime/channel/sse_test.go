package channel

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSSEParser(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		lastID    string
		want      []sseEvent
		wantErr   error // after the events; io.EOF for a clean end
		wantRetry time.Duration
	}{
		{"one event", "id: 1\nevent: tick\ndata: {\"a\":1}\n\n", "",
			[]sseEvent{{LastEventID: "1", Type: "tick", Data: `{"a":1}`}}, io.EOF, 0},
		{"multi-line data, CRLF and CR line ends", "data: a\r\ndata:b\rdata:  c\r\n\r\n", "",
			[]sseEvent{{Data: "a\nb\n c"}}, io.EOF, 0},
		{"byte order mark and comments", "\uFEFF: hello\n:heartbeat\ndata: x\n\n", "",
			[]sseEvent{{Data: "x"}}, io.EOF, 0},
		{"the id carries over to later events", "id: 7\ndata: a\n\ndata: b\n\n", "",
			[]sseEvent{{LastEventID: "7", Data: "a"}, {LastEventID: "7", Data: "b"}}, io.EOF, 0},
		{"resumes from the last event id it was given", "data: a\n\n", "41",
			[]sseEvent{{LastEventID: "41", Data: "a"}}, io.EOF, 0},
		{"an id-only event moves the last event id", "id: 9\n\n: ping\n\nid: 9\n\n", "",
			[]sseEvent{{LastEventID: "9"}}, io.EOF, 0},
		{"an id with NUL is ignored", "id: a\x00b\ndata: x\n\n", "5",
			[]sseEvent{{LastEventID: "5", Data: "x"}}, io.EOF, 0},
		{"a partial event at the end is dropped", "id: 1\ndata: a\n\nid: 2\ndata: {\"cut", "",
			[]sseEvent{{LastEventID: "1", Data: "a"}}, io.EOF, 0},
		{"an event without its blank line is dropped", "id: 1\ndata: a\n\nid: 2\ndata: b\n", "",
			[]sseEvent{{LastEventID: "1", Data: "a"}}, io.EOF, 0},
		{"retry", "retry: 1500\nretry: soon\ndata: x\n\n", "",
			[]sseEvent{{Data: "x"}}, io.EOF, 1500 * time.Millisecond},
		{"a line over the limit", "data: a\n\ndata: " + strings.Repeat("x", 100) + "\n\n", "",
			[]sseEvent{{Data: "a"}}, errLineTooLong, 0},
		{"an event over the limit", "data: a\n\n" + strings.Repeat("data: 0123456789\n", 20) + "\n", "",
			[]sseEvent{{Data: "a"}}, errEventTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var retry time.Duration
			p := newSSEParser(strings.NewReader(tt.stream), tt.lastID, 64, 128, func(d time.Duration) { retry = d })
			var got []sseEvent
			var err error
			for {
				var ev sseEvent
				if ev, err = p.next(); err != nil {
					break
				}
				got = append(got, ev)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("events = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
			if retry != tt.wantRetry {
				t.Errorf("retry = %v, want %v", retry, tt.wantRetry)
			}
		})
	}
}
